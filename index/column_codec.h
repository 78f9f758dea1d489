// Internal to index/: operations that need a Column's representation: merging replaced rows
// into a new column version, and (de)serialisation for index files.
#ifndef TWINQ_INDEX_COLUMN_CODEC_H_
#define TWINQ_INDEX_COLUMN_CODEC_H_

#include <cstring>
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

  // Writes the column in the layout of the current index format (version 3: the dictionary is
  // stored encoded, Dictionary::encoded()).
  static void Write(const Column& c, std::string* out);
  // Reads a column written by Write from `in` (advanced past it); false when malformed,
  // including a row at or beyond `row_count` (the table's rows). `format_version`: the file's
  // (1 and 2 store the dictionary as a list of strings). With an `owner` of the bytes `in` views,
  // a version 3 dictionary stays in place (a view, Dictionary::FromEncoded); otherwise, and for
  // older versions, it is copied.
  static bool Read(std::string_view* in, std::shared_ptr<const Column>* out, std::string* error,
                   uint32_t row_count, uint32_t format_version,
                   const std::shared_ptr<const void>& owner);
};

// Little-endian primitives for index files.
// Inline: a load reads three of them per document and two per dictionary string.
inline void PutU32(std::string* out, uint32_t v) {
  out->append(reinterpret_cast<const char*>(&v), 4);
}
inline void PutU64(std::string* out, uint64_t v) {
  out->append(reinterpret_cast<const char*>(&v), 8);
}
inline void PutF64(std::string* out, double v) {
  out->append(reinterpret_cast<const char*>(&v), 8);
}
inline void PutBytes(std::string* out, std::string_view s) {  // u32 length + bytes
  PutU32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}
inline bool GetU32(std::string_view* in, uint32_t* v) {
  if (in->size() < 4) return false;
  std::memcpy(v, in->data(), 4);
  in->remove_prefix(4);
  return true;
}
inline bool GetU64(std::string_view* in, uint64_t* v) {
  if (in->size() < 8) return false;
  std::memcpy(v, in->data(), 8);
  in->remove_prefix(8);
  return true;
}
inline bool GetF64(std::string_view* in, double* v) {
  if (in->size() < 8) return false;
  std::memcpy(v, in->data(), 8);
  in->remove_prefix(8);
  return true;
}
inline bool GetBytes(std::string_view* in, std::string_view* s) {
  uint32_t n;
  if (!GetU32(in, &n) || in->size() < n) return false;
  *s = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}

}  // namespace twinq::index

#endif  // TWINQ_INDEX_COLUMN_CODEC_H_
