// Source text with a line table: maps byte offsets to 1-based line and column.
#ifndef TWINQ_ENGINE_COMMON_SOURCE_H_
#define TWINQ_ENGINE_COMMON_SOURCE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace twinq {

// A half-open byte range [begin, end) into a Source.
struct SourceRange {
  uint32_t begin = 0;
  uint32_t end = 0;

  bool operator==(const SourceRange&) const = default;
  uint32_t size() const { return end > begin ? end - begin : 0; }
};

// 1-based line and column. Columns count Unicode code points, not bytes.
struct LineCol {
  uint32_t line = 1;
  uint32_t column = 1;
};

class Source {
 public:
  Source(std::string name, std::string text);

  const std::string& name() const { return name_; }
  const std::string& text() const { return text_; }
  std::string_view Slice(SourceRange r) const;

  LineCol Locate(uint32_t offset) const;
  // The text of 1-based line `line`, without its line terminator.
  std::string_view Line(uint32_t line) const;
  uint32_t line_count() const { return static_cast<uint32_t>(line_starts_.size()); }

 private:
  std::string name_;
  std::string text_;
  std::vector<uint32_t> line_starts_;
};

}  // namespace twinq

#endif  // TWINQ_ENGINE_COMMON_SOURCE_H_
