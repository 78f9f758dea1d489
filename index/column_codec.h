// Internal to index/: operations that need a Column's representation: merging replaced rows
// into a new column version, and (de)serialisation for index files.
#ifndef TWINQ_INDEX_COLUMN_CODEC_H_
#define TWINQ_INDEX_COLUMN_CODEC_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "index/column.h"

namespace twinq::index {

class ColumnCodec {
 public:
  // A new version of `old` where the rows in `changed` (sorted) lose their entries and take
  // those of `entries` (sorted by row; a subset of `changed`). Linear in the column's size per
  // kind; codes of untouched rows are remapped, never re-interned. Postings are kept up to date.
  static std::shared_ptr<const Column> Merge(
      const Column& old, const std::vector<uint32_t>& changed,
      const std::vector<std::pair<uint32_t, const FlatEntry*>>& entries);

  static void Write(const Column& c, std::string* out);
  // Reads a column written by Write from `in` (advanced past it); false when malformed,
  // including a row at or beyond `row_count` (the table's rows).
  static bool Read(std::string_view* in, std::shared_ptr<const Column>* out, std::string* error,
                   uint32_t row_count);
};

// Little-endian primitives for index files.
void PutU32(std::string* out, uint32_t v);
void PutU64(std::string* out, uint64_t v);
void PutF64(std::string* out, double v);
void PutBytes(std::string* out, std::string_view s);  // u32 length + bytes
bool GetU32(std::string_view* in, uint32_t* v);
bool GetU64(std::string_view* in, uint64_t* v);
bool GetF64(std::string_view* in, double* v);
bool GetBytes(std::string_view* in, std::string_view* s);

}  // namespace twinq::index

#endif  // TWINQ_INDEX_COLUMN_CODEC_H_
