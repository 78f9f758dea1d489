// The patch fast path's view of a stored twin document: where, in its JSON text, the members a
// twin patch can change ("etag", "version", "tags" and "properties"."desired") start and end.
//
// A patch (twin_patch.h) changes at most those four values and leaves every other byte of the
// twin alone. So instead of parsing the whole stored document (about 1.7 KB for a generated twin,
// two thirds of it properties.reported and device fields), patching it and printing it back, the
// fast path parses only these sections into a partial twin, patches that, and splices the new
// sections' text into the old document. The result is byte-for-byte what the slow path (parse
// the whole twin, ApplyTwinPatch, ToJson) prints: ToJson of a twin is the concatenation of the
// ToJson of its members, and the stored document is itself ToJson output.
//
// The scan is deliberately strict: it succeeds only on a document whose top level and whose
// "properties" object have no key written with escapes and no repeated key; anything else
// (including text that is not JSON) returns nullopt and the caller takes the slow path.
#ifndef TWINQ_INDEX_TWIN_SPLICE_H_
#define TWINQ_INDEX_TWIN_SPLICE_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace twinq::index {

// A value's bytes [begin, end) in the document; begin == end: the member is absent.
struct JsonSpan {
  size_t begin = 0;
  size_t end = 0;
  bool found() const { return end > begin; }
  std::string_view in(std::string_view text) const { return text.substr(begin, end - begin); }
};

// One member of an object in a document.
struct JsonMember {
  std::string_view key;  // as written, without its quotes (never holds an escape)
  JsonSpan member;       // from the key's opening quote to the end of the value
  JsonSpan value;
};

struct TwinSections {
  JsonSpan etag;
  JsonSpan version;
  JsonSpan tags;
  JsonSpan desired;  // properties.desired (only when "properties" is an object)
  // The members of "tags" and of "properties"."desired", listed while the scan passes them, so
  // that a patch need not read them twice: what ScanObjectMembers returns for those spans
  // (nullopt when it would: the section is absent or not an object, or one of its keys is
  // written with escapes or repeats), and nullopt for a section not asked for.
  std::optional<std::vector<JsonMember>> tag_members;
  std::optional<std::vector<JsonMember>> desired_members;
};

// The sections of a twin document (a JSON object), or nullopt (see above). The scan stops as
// soon as it has found "etag", "version" and the sections asked for (`tags`; `desired`, whose
// span is only looked for when asked), so most of the document (properties.reported, the device
// fields after "properties") is usually never read. A key repeated past that point is not seen:
// stored documents never repeat keys (twin input and ParseJson reject them), and a document that
// does cannot be parsed by the whole-document path either.
std::optional<TwinSections> ScanTwinSections(std::string_view json, bool tags = true,
                                             bool desired = true);

// The members of the object at `object` (a span of `json`), in order; nullopt when that text is
// not an object, a key is written with escapes, or a key repeats (the same strictness as
// ScanTwinSections). The values are skipped, not checked.
std::optional<std::vector<JsonMember>> ScanObjectMembers(std::string_view json, JsonSpan object);

// `text` with each span replaced by its string. The spans must not overlap; any order. The
// result is written into `*storage` (taken over; its content is dropped) when that is large
// enough.
std::string SpliceJson(std::string_view text,
                       std::vector<std::pair<JsonSpan, std::string_view>> replacements,
                       std::string* storage = nullptr);

}  // namespace twinq::index

#endif  // TWINQ_INDEX_TWIN_SPLICE_H_
