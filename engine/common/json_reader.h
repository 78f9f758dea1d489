// Reading JSON text into the value model (value.h): twin documents (NDJSON, arrays, concatenated
// objects) and single JSON values (patches, tests). Parsing uses simdjson; when it rejects a
// document, a small scalar scanner re-reads that document to name the exact byte and the reason.
//
// Accepted JSON is RFC 8259 with these additions and restrictions:
//  - a UTF-8 byte order mark at the very start is skipped;
//  - duplicate keys inside one object are an error (the document would be ambiguous);
//  - numbers become doubles; an integer literal (no fraction, no exponent) whose magnitude exceeds
//    2^53 is an error, since it cannot be held exactly (DESIGN.md, decision 1). Literals with a
//    fraction or exponent are rounded to the nearest double as usual; `-0` is the integer 0;
//  - nesting deeper than 1024 arrays/objects is an error.
// Error locations are `NAME:LINE:COL` with 1-based lines and 1-based byte columns, counted after
// the byte order mark.
#ifndef TWINQ_ENGINE_COMMON_JSON_READER_H_
#define TWINQ_ENGINE_COMMON_JSON_READER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/result.h"
#include "engine/common/value.h"

namespace twinq {

// Deepest nesting of arrays and objects accepted in a JSON document (simdjson's default).
inline constexpr size_t kMaxJsonDepth = 1024;

struct TwinSet {
  // Device twins: objects with a non-empty string "deviceId" and no "moduleId"; sorted by
  // deviceId (byte order).
  std::vector<Value> devices;
  // Module twins: objects with non-empty string "deviceId" and "moduleId"; sorted by
  // (deviceId, moduleId).
  std::vector<Value> modules;
};

// Parses JSON text holding twins in any of these forms: NDJSON (one document per line), a JSON
// array of documents (e.g. the saved output of SELECT * FROM devices), a single object, or
// whitespace-separated concatenated objects; top-level arrays and objects may be mixed, and one
// array may mix device and module twins. Only whitespace (or nothing) gives an empty TwinSet.
// `name` (a file name) starts every error message:
//   fleet.ndjson:3:17: expected ',' or '}' after object member, found '"'   (malformed JSON)
//   fleet.ndjson:7: document has no "deviceId"                              (twin rules)
//   fleet.ndjson:9: duplicate deviceId "dev-1" (first at line 3)
// The first error in input order is reported (duplicate ids after all syntax and shape errors).
Expected<TwinSet> ReadTwins(std::string_view text, std::string_view name);

// ReadTwins over the contents of a file; `path` is the name in messages. An unreadable file gives
// `PATH: cannot read: <strerror>`.
Expected<TwinSet> ReadTwinsFile(const std::string& path);

// Streams the twins of `text` to `sink` in input order (device and module twins alike; `module`
// tells which), with the validation and error messages of ReadTwins, without keeping them: the
// way to ingest a large fleet. Duplicate ids are detected after the last twin, so on an Error
// the caller must discard whatever it built from the twins it saw. Returns the twin count.
using TwinSink = std::function<void(Value twin, bool module)>;
Expected<size_t> VisitTwins(std::string_view text, std::string_view name, const TwinSink& sink);
Expected<size_t> VisitTwinsFile(const std::string& path, const TwinSink& sink);

// A JSON value as simdjson parsed it, flattened in pre-order: the ingest's fast path
// (index/table.cc, TableStream) reads twins this way and builds no Value for them. Every check
// of the value model holds (unique keys, exact integers); strings are views into the parser's
// buffers, valid only while the sink runs.
struct JsonToken {
  ValueKind kind = ValueKind::kNull;  // never kUndefined
  bool boolean = false;               // kBool
  bool integer = false;     // kNumber: read from an integer literal (no fraction, no exponent)
  uint32_t size = 0;        // kArray, kObject: direct children
  uint32_t span = 1;        // tokens of its subtree, itself included: `this + span` follows it
  std::string_view key;     // a member's name (the children of an object)
  std::string_view string;  // kString
  double number = 0;        // kNumber
};

// The value `tokens` (the first of a subtree) stands for: the oracle of the token path in tests.
Value TokensToValue(const JsonToken* tokens);
// AppendJson (value.h) of TokensToValue(tokens), without building the Value.
void AppendJson(const JsonToken* tokens, std::string* out);
// Whether `text` is exactly what AppendJson(tokens) appends, found without printing: the
// structural characters, keys and strings are compared in place, and only numbers and strings
// that need escapes are printed (into a scratch buffer). An ingest that keeps views of its input
// asks this of every twin.
bool SpellsAsJson(const JsonToken* tokens, std::string_view text);
// SpellsAsJson(tokens, source) for `source` the text `tokens` were read from (as VisitTwins and
// VisitTwinsFile give them; for any other text the answer is unspecified). Faster: when `source`
// holds no backslash, each of its strings is spelled as its value is (the reader refuses control
// characters left unescaped), so a string is matched by its quotes alone; an integer literal is
// matched by its sign and digits, with no print.
bool SourceSpellsAsJson(const JsonToken* tokens, std::string_view source);
// What the token path reads from `line` (NDJSON: one object alone on its line) with simdjson's
// On-Demand API: the print (AppendJson) of its tokens and whether it found `line` (without the
// whitespace around it) spelled as that print, or nullopt where it leaves the line to the DOM
// parser, which then decides (an error, a twin the tokens refuse, anything On-Demand might read
// differently). For tests: the fallback hides which parser took a line.
struct OnDemandLine {
  std::string print;
  bool printed = false;  // `line` is `print` (the sink's `printed`, below)
};
std::optional<OnDemandLine> OnDemandTokensForTesting(std::string_view line);

// VisitTwinsFile as tokens (the twin's root object is `twin[0]`), with each twin's text as the
// file spells it: the whole document from its '{' to its '}', or empty for a twin inside an
// array. The texts point into the file's contents (mapped, or read into memory), which `*input`
// keeps alive: it is set before the first twin and may be kept for as long as the texts are used.
// `printed`: the reader found `text` spelled exactly as AppendJson(twin) prints (it checks as
// it reads an NDJSON line; false says nothing, and SourceSpellsAsJson can tell).
// Validation and error messages are those of VisitTwins.
using TwinTokenSink =
    std::function<void(const JsonToken* twin, bool module, std::string_view text, bool printed)>;
Expected<size_t> VisitTwinsFile(const std::string& path, const TwinTokenSink& sink,
                                std::shared_ptr<const void>* input);
// VisitTwins as tokens; the texts point into a copy of `text` that lives during the call only.
Expected<size_t> VisitTwins(std::string_view text, std::string_view name,
                            const TwinTokenSink& sink);

// Parses exactly one JSON value of any type (surrounding whitespace allowed); used for patches
// and tests. Errors are `NAME:LINE:COL: reason`, as for ReadTwins.
Expected<Value> ParseJson(std::string_view text, std::string_view name);

}  // namespace twinq

#endif  // TWINQ_ENGINE_COMMON_JSON_READER_H_
