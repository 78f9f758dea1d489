// Twin mutation semantics as pure functions over documents (reference/iothub.md A.8, A.9, B.6):
// PATCH /twins (merge), PUT /twins (replace), the If-Match precondition, the version / etag /
// $version / $metadata bumps and the A.9 validation rules. Used by the columnar index's mutation
// path and by twin-update jobs. Nothing here touches shared state: the input twin is never
// modified (Values are immutable); the result shares every unchanged subtree with the input.
//
// ERRORS. Every error message starts with a code the HTTP layer maps to a status:
//   "PreconditionFailed: ..."  -> 412 (If-Match does not match the twin's etag)
//   "ArgumentInvalid: ..."     -> 400 (error code 400004): a malformed or invalid patch
// Checks run in this order and the first failure is reported: the twin is an object; If-Match
// (RFC 9110: preconditions are evaluated before the request content is looked at); the patch's
// shape (top-level keys in order, section types, deviceId/moduleId); the content of tags, then of
// properties.desired (whatever their order in the patch), each depth-first in document order
// (keys, depth, values, the optional job charset); finally the size of each changed section
// after applying.
// A patch that fails any check is rejected whole; nothing is applied.
//
// PATCH SHAPE. The patch is a JSON object whose keys may only be (case-sensitive):
//   "tags"        an object: merged into the twin's tags;
//   "properties"  an object with only "desired" (an object: merged into properties.desired) and
//                 "reported", which must be absent or exactly {} (the service side may not write
//                 reported; SDK samples send "reported": {} in job patches);
//   "etag"        ignored here (If-Match is the `if_match` argument; twin jobs check it upstream);
//   "deviceId"    must be a string equal to the twin's deviceId;
//   "moduleId"    must be a string equal to the twin's moduleId (so never given for device twins).
// Any other key is an error naming it. "tags", "properties" and "properties.desired" given as
// anything but an object (null included) are errors.
//
// MERGE (ApplyTwinPatch): JSON merge-patch (RFC 7386) of tags and properties.desired. Objects
// merge recursively; scalars and arrays replace; null deletes the key (deleting a missing key is a
// no-op); an object patched onto a missing key or a non-object starts from {} (so nulls inside it
// vanish: {"a":{"b":null}} onto a missing "a" gives "a":{}). Key order is stable: existing keys
// keep their position, new keys are appended at the end of their object. At the root of
// properties.desired new keys go before a trailing run of "$metadata"/"$version" members, so those
// stay last, as the service writes them. A twin without "tags" / "properties" / "desired" (or
// holding a non-object there, read as {}) gets the member created, appended, only when that section
// changes.
//
// REPLACE (ReplaceTwin, PUT /twins): the same shape and validation, but tags and
// properties.desired become exactly the replacement's (an absent "tags", "properties" or
// "desired" means {}: that section is emptied). Null members count as absent. It is computed as a
// merge that also deletes every key absent from the replacement, recursively, so key order stays
// stable and only what really changed gets new metadata.
//
// CHANGE AND BUMPS. A section changed when its content (for desired: everything but the root's
// "$metadata" and "$version") differs structurally (value.h operator==) before and after. Setting a
// key to the value it already has is not a change. When nothing changed the result is the input
// twin itself, untouched (changed == false, no bumps). Otherwise:
//  - "version" (twin) = old + 1 (a missing, negative or non-integral version reads as 0);
//  - "etag" = EtagForVersion(max(new version, EtagCounter(old etag) + 1)), so the etag always
//    changes even when a twin's etag counter runs ahead of its version (as in the A.8 sample);
//  - when desired changed: properties.desired.$version = old + 1 (missing reads as 0), and
//    properties.desired.$metadata is updated with stamp S = {"$lastUpdated": options.now,
//    "$lastUpdatedVersion": new $version}:
//      * the $metadata root gets S;
//      * an object key whose content changed gets S in its entry and recurses into its children;
//        children that did not change keep their entries as they were (none is fabricated);
//      * a key set to a leaf (scalar or array) gets exactly S as its entry (array elements get no
//        entries of their own); a key set to a new object (where there was none, or a leaf) gets
//        an entry mirroring the whole object, S at every level and for every leaf;
//      * a deleted key's entry is removed; its parent levels get S (they changed).
//    Entries are updated in place; an entry lacking "$lastUpdated" / "$lastUpdatedVersion" gets
//    them inserted at its front. A missing or non-object $metadata (or entry) reads as {}.
//  - members that do not exist yet ("etag", "version", "tags", "properties", "desired",
//    "$metadata", "$version") are appended in that order. Every other field of the twin
//    (properties.reported included) is untouched.
//
// VALIDATION (A.9), on the patch content under tags and properties.desired; each message names the
// path, e.g. "ArgumentInvalid: tags.location: key \"a.b\" must not contain '.'":
//  - keys: not empty; valid UTF-8; at most 1024 bytes; no control characters (C0 U+0000-U+001F,
//    DEL U+007F, C1 U+0080-U+009F: .NET's char.IsControl, the service's platform), no '.', '$',
//    '#' or ' '. Checked in that order; the first offending character is named;
//  - depth: an object reached through k keys from the section root (array indices not counted) is
//    at level k; levels above 10 are rejected. So tags.one...ten = {"property": "value"} (the
//    docs' example) is fine, and any object, even {}, one level deeper is not;
//  - strings (member values and array elements): valid UTF-8, at most 4096 bytes;
//  - numbers: finite; an integral value must lie in -4503599627370496 ... 4503599627370495
//    (-2^52 ... 2^52-1, the documented bounds; A.9's shorthand "+-(2^52-1)" is off by one at the
//    bottom). The JSON reader keeps no integer/float distinction, so a value counts as an integer
//    when it is integral however it was written: 1e20 is rejected, and so is every number of
//    magnitude 2^52 or more (all such doubles are integral); non-integral values are fine;
//  - arrays are allowed (current docs); their elements are validated like member values;
//  - undefined (programmatic Values only) is rejected as a value.
// A thread does not check a section again that it found valid the time before: the same storage
// (Values are immutable; the thread holds a copy, so the storage is not reused) under the same
// job-charset option. A twin job applies one patch Value to every target, and so validates it
// once per thread instead of once per device.
// SIZES, on the sections after applying and only for a section that changed: tags at most 8192
// bytes, properties.desired at most 32768 bytes, measured by TwinSectionSize.
// JOB CHARSET (options.validate_job_charset, B.2): every key and every string value of the patch
// content may only hold US-ASCII printable characters other than space and
// $ ( ) < > @ , ; : \ " / [ ] ? = { }  — tab and anything non-ASCII is rejected too. Checked
// after the A.9 rules for the same key or value; the message names the character, e.g.
// "ArgumentInvalid: tags.t: string value contains ':', which is not allowed in job property
// values". Characters print as 'c' when printable ASCII, otherwise as U+XXXX.
#ifndef TWINQ_INDEX_TWIN_PATCH_H_
#define TWINQ_INDEX_TWIN_PATCH_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine/common/result.h"
#include "engine/common/value.h"

namespace twinq::index {

// Limits of A.9 (current values).
inline constexpr size_t kMaxTwinKeyBytes = 1024;
inline constexpr size_t kMaxTwinStringBytes = 4096;
inline constexpr int kMaxTwinDepth = 10;
inline constexpr size_t kMaxTagsBytes = 8 * 1024;
inline constexpr size_t kMaxDesiredBytes = 32 * 1024;
inline constexpr int64_t kMinTwinInteger = -4503599627370496;  // -2^52
inline constexpr int64_t kMaxTwinInteger = 4503599627370495;   // 2^52 - 1

struct PatchOptions {
  // Written to every $lastUpdated touched: an ISO-8601 UTC timestamp with 7 fractional digits,
  // e.g. "2026-11-26T18:00:00.0000000Z" (see FormatTimestamp). Not validated.
  std::string now;
  // The Jobs rule of B.2 for names and values (see JOB CHARSET above).
  bool validate_job_charset = false;
};

struct PatchResult {
  Value twin;                 // the new twin (the input twin itself when nothing changed)
  bool changed = false;       // tags_changed || desired_changed
  bool tags_changed = false;  // lets the index re-flatten only the sections that changed
  bool desired_changed = false;
};

// PATCH /twins/{id}[/modules/{mid}]: applies `patch` (merge semantics, see above) to a device or
// module twin. `if_match` is the etag the caller expects: empty, "*" or "\"*\"" force the update;
// otherwise one pair of surrounding double quotes is removed ("\"AAAAAAAAAAc=\"" and
// "AAAAAAAAAAc=" are the same etag) and the rest must equal the twin's "etag" string exactly,
// else "PreconditionFailed: If-Match \"X\" does not match the twin's etag \"Y\"" (a twin without
// an etag matches no specific etag).
Expected<PatchResult> ApplyTwinPatch(const Value& twin, const Value& patch,
                                     std::string_view if_match, const PatchOptions& options);

// PUT /twins/{id}[/modules/{mid}]: tags and properties.desired replaced wholesale by the
// replacement's (see REPLACE above); same shape rules, If-Match, validation, bumps and metadata.
Expected<PatchResult> ReplaceTwin(const Value& twin, const Value& replacement,
                                  std::string_view if_match, const PatchOptions& options);

// The etag for a counter: standard base64 (with padding) of the 8-byte big-endian counter, e.g.
// EtagForVersion(7) == "AAAAAAAAAAc=".
std::string EtagForVersion(uint64_t version);
// The counter inside an etag made by EtagForVersion; nullopt for any other string.
std::optional<uint64_t> EtagCounter(std::string_view etag);

// "YYYY-MM-DDTHH:MM:SS.fffffffZ" for a unix time in 100 ns ticks (negative = before 1970).
// Times outside 0001-01-01T00:00:00.0000000Z ... 9999-12-31T23:59:59.9999999Z are clamped to
// that range (the range of .NET's DateTime, the service's platform).
std::string FormatTimestamp(int64_t unix_ticks_100ns);

// The A.9 size of a section (tags, desired or reported): the sum over its members of key length
// + value length, where
//   - a key counts its UTF-8 bytes, and a string its UTF-8 bytes, both without the bytes of
//     control characters (U+0000-U+001F, U+007F-U+009F);
//   - a number counts 8, a boolean 4, null 4 (as long as "null"; nulls only occur as array
//     elements, since a null member is a deletion), undefined 0;
//   - an object counts the sum over its members (key + value), an array the sum of its elements;
//   - at the section root, the members "$metadata" and "$version" are not counted.
// A non-object counts as its value length.
size_t TwinSectionSize(const Value& section);

}  // namespace twinq::index

#endif  // TWINQ_INDEX_TWIN_PATCH_H_
