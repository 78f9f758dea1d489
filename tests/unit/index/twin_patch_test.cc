// Twin mutation semantics (index/twin_patch.h): merge and replace rules, validation messages,
// If-Match, version / etag / $version / $metadata bumps, and a randomized check of the merge
// against an independent merge-patch model.
#include "index/twin_patch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/json_reader.h"

namespace twinq::index {
namespace {

constexpr char kNow[] = "2026-11-26T18:00:00.0000000Z";
constexpr char kOld[] = "2020-01-01T00:00:00.0000000Z";

Value J(std::string_view text) {
  Expected<Value> v = ParseJson(text, "test");
  if (!v.ok()) {
    ADD_FAILURE() << v.error().message;
    return Value();
  }
  return std::move(v).value();
}

Value Obj(Object members) { return Value::MakeObject(std::move(members)); }
Value Str(std::string s) { return Value::String(std::move(s)); }

PatchOptions Options(bool job_charset = false) {
  PatchOptions options;
  options.now = kNow;
  options.validate_job_charset = job_charset;
  return options;
}

PatchResult Apply(const Value& twin, const Value& patch, std::string_view if_match = "*",
                  const PatchOptions& options = Options()) {
  Expected<PatchResult> r = ApplyTwinPatch(twin, patch, if_match, options);
  if (!r.ok()) {
    ADD_FAILURE() << "unexpected error: " << r.error().message;
    return PatchResult{twin, false};
  }
  return std::move(r).value();
}

std::string ApplyError(const Value& twin, const Value& patch, std::string_view if_match = "*",
                       const PatchOptions& options = Options()) {
  Expected<PatchResult> r = ApplyTwinPatch(twin, patch, if_match, options);
  if (r.ok()) {
    ADD_FAILURE() << "expected an error, got " << ToJson(r->twin);
    return "";
  }
  return r.error().message;
}

PatchResult Replace(const Value& twin, const Value& replacement, std::string_view if_match = "*") {
  Expected<PatchResult> r = ReplaceTwin(twin, replacement, if_match, Options());
  if (!r.ok()) {
    ADD_FAILURE() << "unexpected error: " << r.error().message;
    return PatchResult{twin, false};
  }
  return std::move(r).value();
}

const Value& Field(const Value& v, std::string_view key) {
  static const Value kMissing;
  const Value* m = v.Find(key);
  return m != nullptr ? *m : kMissing;
}
const Value& Tags(const Value& twin) { return Field(twin, "tags"); }
const Value& Desired(const Value& twin) { return Field(Field(twin, "properties"), "desired"); }
const Value& Meta(const Value& twin) { return Field(Desired(twin), "$metadata"); }

// properties.desired without $metadata and $version, as JSON.
std::string DesiredContent(const Value& twin) {
  Object out;
  if (Desired(twin).is_object()) {
    for (const auto& m : Desired(twin).as_object()) {
      if (m.first != "$metadata" && m.first != "$version") out.push_back(m);
    }
  }
  return ToJson(Obj(std::move(out)));
}

std::string Stamp(std::string_view now, int version) {
  return "{\"$lastUpdated\":\"" + std::string(now) +
         "\",\"$lastUpdatedVersion\":" + std::to_string(version) + "}";
}

// A device twin with the given tags and desired JSON; desired gets a full metadata mirror
// stamped kOld at $version 4.
Value MetadataFor(const Value& v);
Value Twin(std::string_view tags, std::string_view desired) {
  Value d = J(desired);
  Object desired_members = d.as_object();
  desired_members.emplace_back("$metadata", MetadataFor(d));
  desired_members.emplace_back("$version", Value::Number(4));
  return Obj(
      {{"deviceId", Str("devA")},
       {"etag", Str("AAAAAAAAAAc=")},
       {"version", Value::Number(8)},
       {"tags", J(tags)},
       {"properties", Obj({{"desired", Obj(std::move(desired_members))},
                           {"reported", J(R"({"battery":55,"$metadata":{},"$version":1})")}})}});
}
Value MetadataFor(const Value& v) {
  Object m{{"$lastUpdated", Str(kOld)}, {"$lastUpdatedVersion", Value::Number(4)}};
  if (v.is_object()) {
    for (const auto& [k, c] : v.as_object()) m.emplace_back(k, MetadataFor(c));
  }
  return Obj(std::move(m));
}

// ---------------------------------------------------------------------------------------------
// Merge rules

TEST(TwinPatchTest, NestedMerge) {
  Value twin = Twin(R"({"a":{"x":1,"y":2},"b":3})", "{}");
  PatchResult r = Apply(twin, J(R"({"tags":{"a":{"y":5,"z":6},"c":4}})"));
  EXPECT_TRUE(r.changed);
  EXPECT_TRUE(r.tags_changed);
  EXPECT_FALSE(r.desired_changed);
  EXPECT_EQ(ToJson(Tags(r.twin)), R"({"a":{"x":1,"y":5,"z":6},"b":3,"c":4})");
}

TEST(TwinPatchTest, NullDeletes) {
  Value twin = Twin(R"({"a":{"x":1,"y":2},"b":3})", R"({"p":{"q":1,"r":2}})");
  PatchResult r =
      Apply(twin, J(R"({"tags":{"a":{"x":null},"b":null},"properties":{"desired":{"p":null}}})"));
  EXPECT_EQ(ToJson(Tags(r.twin)), R"({"a":{"y":2}})");
  EXPECT_EQ(DesiredContent(r.twin), "{}");
}

TEST(TwinPatchTest, DeleteOfMissingKeyIsNoOp) {
  Value twin = Twin(R"({"a":1})", R"({"p":1})");
  PatchResult r = Apply(
      twin, J(R"({"tags":{"zz":null,"a":1},"properties":{"desired":{"nope":{"deeper":null}}}})"));
  // "nope": {"deeper": null} onto a missing key creates {"nope": {}}: a change (RFC 7386).
  EXPECT_TRUE(r.desired_changed);
  EXPECT_EQ(DesiredContent(r.twin), R"({"p":1,"nope":{}})");
  r = Apply(twin, J(R"({"tags":{"zz":null},"properties":{"desired":{"q":null}}})"));
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(ToJson(r.twin), ToJson(twin));
}

TEST(TwinPatchTest, ScalarAndObjectReplaceEachOther) {
  Value twin = Twin(R"({"s":1,"o":{"x":1}})", "{}");
  PatchResult r = Apply(twin, J(R"({"tags":{"s":{"n":{"m":null,"k":true}},"o":"flat"}})"));
  EXPECT_EQ(ToJson(Tags(r.twin)), R"({"s":{"n":{"k":true}},"o":"flat"})");
}

TEST(TwinPatchTest, ArraysReplaceWhole) {
  Value twin = Twin(R"({"a":[1,2,3],"o":{"x":1},"b":[{"x":1}]})", "{}");
  PatchResult r = Apply(twin, J(R"({"tags":{"a":[4],"o":[null,{"y":null}],"b":{"x":2},"n":[]}})"));
  // Arrays are leaves: nulls inside them are kept; an object onto an array starts from {}.
  EXPECT_EQ(ToJson(Tags(r.twin)), R"({"a":[4],"o":[null,{"y":null}],"b":{"x":2},"n":[]})");
}

TEST(TwinPatchTest, KeyOrderIsStable) {
  Value twin = Twin(R"({"z":1,"a":2,"m":{"q":1,"b":2}})", R"({"y":1,"c":2})");
  PatchResult r = Apply(
      twin,
      J(R"({"tags":{"b":0,"m":{"a":3,"q":9},"a":5},"properties":{"desired":{"a":1,"y":3}}})"));
  EXPECT_EQ(ToJson(Tags(r.twin)), R"({"z":1,"a":5,"m":{"q":9,"b":2,"a":3},"b":0})");
  // New desired keys go before the trailing $metadata / $version.
  std::string desired = ToJson(Desired(r.twin));
  EXPECT_EQ(desired.substr(0, desired.find(",\"$metadata\"")), R"({"y":3,"c":2,"a":1)");
  EXPECT_NE(desired.find(R"("$version":5})"), std::string::npos) << desired;
}

TEST(TwinPatchTest, DesiredRootKeysGoBeforeTrailingReservedOnlyWhenTheyTrail) {
  // $version first, $metadata last: existing positions never move.
  Value twin =
      J(R"({"deviceId":"d","properties":{"desired":{"$version":2,"a":1,"$metadata":{}}}})");
  PatchResult r = Apply(twin, J(R"({"properties":{"desired":{"b":2}}})"));
  EXPECT_EQ(ToJson(Desired(r.twin)), R"({"$version":3,"a":1,"b":2,"$metadata":{"$lastUpdated":")" +
                                         std::string(kNow) + R"(","$lastUpdatedVersion":3,"b":)" +
                                         Stamp(kNow, 3) + "}}");
}

TEST(TwinPatchTest, FullTwinExampleFromTheReference) {
  Value twin = J(R"({
    "deviceId": "devA", "etag": "AAAAAAAAAAc=", "deviceEtag": "NTk0ODUyODgx",
    "status": "enabled", "version": 8,
    "tags": {"deploymentLocation": {"building": "43", "floor": "1"}},
    "properties": {
      "desired": {"telemetryConfig": {"sendFrequency": "5m"},
                  "$metadata": {"$lastUpdated": "2023-10-12T13:38:52.3108419Z", "$lastUpdatedVersion": 4,
                                "telemetryConfig": {"$lastUpdated": "T1", "$lastUpdatedVersion": 4,
                                                    "sendFrequency": {"$lastUpdated": "T1", "$lastUpdatedVersion": 4}}},
                  "$version": 4},
      "reported": {"batteryLevel": 55, "$metadata": {"$lastUpdated": "T2"}, "$version": 1}
    },
    "capabilities": {"iotEdge": true}
  })");
  Value patch = J(R"({"etag": "*", "deviceId": "devA",
    "tags": {"deploymentLocation": {"floor": "2"}},
    "properties": {"desired": {"telemetryConfig": {"sendFrequency": "10m"}, "newKey": true},
                   "reported": {}}})");
  PatchResult r = Apply(twin, patch, "\"AAAAAAAAAAc=\"");
  std::string s = Stamp(kNow, 5);
  Value expected = J(R"({
    "deviceId": "devA", "etag": "AAAAAAAAAAk=", "deviceEtag": "NTk0ODUyODgx",
    "status": "enabled", "version": 9,
    "tags": {"deploymentLocation": {"building": "43", "floor": "2"}},
    "properties": {
      "desired": {"telemetryConfig": {"sendFrequency": "10m"}, "newKey": true,
                  "$metadata": {"$lastUpdated": ")" +
                     std::string(kNow) +
                     R"(", "$lastUpdatedVersion": 5,
                                "telemetryConfig": {"$lastUpdated": ")" +
                     std::string(kNow) + R"(", "$lastUpdatedVersion": 5,
                                                    "sendFrequency": )" +
                     s + R"(},
                                "newKey": )" +
                     s + R"(},
                  "$version": 5},
      "reported": {"batteryLevel": 55, "$metadata": {"$lastUpdated": "T2"}, "$version": 1}
    },
    "capabilities": {"iotEdge": true}
  })");
  EXPECT_EQ(ToJson(r.twin), ToJson(expected));
}

// ---------------------------------------------------------------------------------------------
// Bumps and metadata

TEST(TwinPatchTest, TagsChangeBumpsVersionAndEtagOnly) {
  Value twin = Twin(R"({"a":1})", R"({"p":1})");
  PatchResult r = Apply(twin, J(R"({"tags":{"a":2}})"));
  EXPECT_EQ(ToJson(Field(r.twin, "version")), "9");
  EXPECT_EQ(Field(r.twin, "etag").as_string(), "AAAAAAAAAAk=");
  EXPECT_EQ(ToJson(Desired(r.twin)), ToJson(Desired(twin)));  // no $version / $metadata bump
  EXPECT_EQ(ToJson(Field(Field(r.twin, "properties"), "reported")),
            ToJson(Field(Field(twin, "properties"), "reported")));
}

TEST(TwinPatchTest, DesiredChangeBumpsDesiredVersionAndMetadata) {
  Value twin = Twin("{}", R"({"a":{"b":1,"c":2},"d":3})");
  PatchResult r = Apply(twin, J(R"({"properties":{"desired":{"a":{"b":10}}}})"));
  EXPECT_EQ(ToJson(Field(r.twin, "version")), "9");
  EXPECT_EQ(ToJson(Field(Desired(r.twin), "$version")), "5");
  std::string now = kNow;
  EXPECT_EQ(ToJson(Meta(r.twin)),
            R"({"$lastUpdated":")" + now + R"(","$lastUpdatedVersion":5,"a":{"$lastUpdated":")" +
                now + R"(","$lastUpdatedVersion":5,"b":)" + Stamp(kNow, 5) + R"(,"c":)" +
                Stamp(kOld, 4) + R"(},"d":)" + Stamp(kOld, 4) + "}");
}

TEST(TwinPatchTest, DeletedKeysLoseMetadataAndParentsAreStamped) {
  Value twin = Twin("{}", R"({"a":{"b":{"c":1,"e":2}},"d":3})");
  PatchResult r = Apply(twin, J(R"({"properties":{"desired":{"a":{"b":{"c":null}},"d":null}}})"));
  EXPECT_EQ(DesiredContent(r.twin), R"({"a":{"b":{"e":2}}})");
  std::string now = kNow;
  std::string head = R"({"$lastUpdated":")" + now + R"(","$lastUpdatedVersion":5,)";
  EXPECT_EQ(ToJson(Meta(r.twin)),
            head + R"("a":)" + head + R"("b":)" + head + R"("e":)" + Stamp(kOld, 4) + "}}}");
}

TEST(TwinPatchTest, MetadataMirrorsNewObjectsAndCollapsesForLeaves) {
  Value twin = Twin("{}", R"({"o":{"x":1},"s":1})");
  PatchResult r =
      Apply(twin, J(R"({"properties":{"desired":{"o":[1,{"k":2}],"s":{"n":{"m":1}},"t":{}}}})"));
  std::string now = kNow;
  std::string head = R"({"$lastUpdated":")" + now + R"(","$lastUpdatedVersion":5)";
  EXPECT_EQ(ToJson(Meta(r.twin)), head + R"(,"o":)" + Stamp(kNow, 5) + R"(,"s":)" + head +
                                      R"(,"n":)" + head + R"(,"m":)" + Stamp(kNow, 5) +
                                      R"(}},"t":)" + head + "}}");
}

TEST(TwinPatchTest, MetadataIsNotFabricatedForUntouchedKeys) {
  Value twin = J(R"({"deviceId":"d","properties":{"desired":{"a":{"x":1,"y":2},"b":1}}})");
  PatchResult r = Apply(twin, J(R"({"properties":{"desired":{"a":{"x":5}}}})"));
  std::string now = kNow;
  std::string head = R"({"$lastUpdated":")" + now + R"(","$lastUpdatedVersion":1)";
  EXPECT_EQ(ToJson(Meta(r.twin)), head + R"(,"a":)" + head + R"(,"x":)" + Stamp(kNow, 1) + "}}");
  // Missing stamp keys in an existing entry: inserted in front, the rest keeps its order.
  twin = J(R"({"properties":{"desired":{"a":{"x":1},"$metadata":{"a":{"x":{},"z":"stale"}}}}})");
  r = Apply(twin, J(R"({"properties":{"desired":{"a":{"x":2}}}})"));
  EXPECT_EQ(ToJson(Meta(r.twin)),
            head + R"(,"a":)" + head + R"(,"x":)" + Stamp(kNow, 1) + R"(,"z":"stale"}})");
}

TEST(TwinPatchTest, EtagStaysAheadOfItsOwnCounter) {
  // Etag counter 10 > version 3: the new etag is 11, never an old value.
  Value twin = J(R"({"deviceId":"d","etag":"AAAAAAAAAAo=","version":3})");
  PatchResult r = Apply(twin, J(R"({"tags":{"a":1}})"));
  EXPECT_EQ(Field(r.twin, "etag").as_string(), EtagForVersion(11));
  EXPECT_EQ(ToJson(Field(r.twin, "version")), "4");
  // An etag that is not ours: the version decides.
  twin = J(R"({"deviceId":"d","etag":"opaque","version":3})");
  r = Apply(twin, J(R"({"tags":{"a":1}})"));
  EXPECT_EQ(Field(r.twin, "etag").as_string(), EtagForVersion(4));
}

TEST(TwinPatchTest, MissingSectionsAreCreatedWhenNeeded) {
  Value twin = J(R"({"deviceId":"d","status":"enabled"})");
  PatchResult r = Apply(twin, J(R"({"tags":{"t":1},"properties":{"desired":{"p":"v"}}})"));
  std::string now = kNow;
  EXPECT_EQ(
      ToJson(r.twin),
      R"({"deviceId":"d","status":"enabled","etag":"AAAAAAAAAAE=","version":1,"tags":{"t":1},)"
      R"("properties":{"desired":{"p":"v","$metadata":{"$lastUpdated":")" +
          now + R"(","$lastUpdatedVersion":1,"p":)" + Stamp(kNow, 1) + R"(},"$version":1}}})");
  // Only the section that changes is created.
  r = Apply(twin, J(R"({"tags":{"t":1},"properties":{"desired":{}}})"));
  EXPECT_EQ(
      ToJson(r.twin),
      R"({"deviceId":"d","status":"enabled","etag":"AAAAAAAAAAE=","version":1,"tags":{"t":1}})");
  // Non-object sections read as {}.
  twin = J(R"({"deviceId":"d","tags":null,"properties":{"reported":{"r":1}}})");
  r = Apply(twin, J(R"({"tags":{"t":1},"properties":{"desired":{"p":2}}})"));
  EXPECT_EQ(ToJson(Tags(r.twin)), R"({"t":1})");
  EXPECT_EQ(ToJson(Field(r.twin, "properties")).substr(0, 28), R"({"reported":{"r":1},"desired)");
}

TEST(TwinPatchTest, NoOpPatchesLeaveTheTwinIdentical) {
  Value twin = Twin(R"({"a":{"b":[1,2]},"c":"x"})", R"({"p":{"q":true}})");
  for (std::string_view patch : {
           R"({})",
           R"({"tags":{}})",
           R"({"tags":{"a":{"b":[1,2]},"c":"x"}})",
           R"({"properties":{"desired":{"p":{"q":true}}}})",
           R"({"properties":{"desired":{"p":{}},"reported":{}}})",
           R"({"tags":{"gone":null},"etag":"whatever","deviceId":"devA"})",
       }) {
    PatchResult r = Apply(twin, J(patch));
    EXPECT_FALSE(r.changed) << patch;
    EXPECT_FALSE(r.tags_changed) << patch;
    EXPECT_FALSE(r.desired_changed) << patch;
    EXPECT_EQ(ToJson(r.twin), ToJson(twin)) << patch;
  }
}

// ---------------------------------------------------------------------------------------------
// Shape errors

TEST(TwinPatchShapeTest, ReportedWritesAreRejected) {
  Value twin = Twin("{}", "{}");
  EXPECT_EQ(ApplyError(twin, J(R"({"properties":{"reported":{"x":1}}})")),
            "ArgumentInvalid: properties.reported cannot be written by the service; it must be "
            "absent or {}");
  EXPECT_EQ(ApplyError(twin, J(R"({"properties":{"reported":null}})")),
            "ArgumentInvalid: properties.reported cannot be written by the service; it must be "
            "absent or {}");
  EXPECT_FALSE(Apply(twin, J(R"({"properties":{"reported":{}}})")).changed);
}

TEST(TwinPatchShapeTest, IdentityMustMatch) {
  Value twin = Twin("{}", "{}");
  EXPECT_EQ(ApplyError(twin, J(R"({"deviceId":"other","tags":{"a":1}})")),
            R"(ArgumentInvalid: deviceId "other" does not match the twin's deviceId "devA")");
  EXPECT_EQ(ApplyError(twin, J(R"({"deviceId":7})")),
            "ArgumentInvalid: deviceId must be a string, found number");
  EXPECT_EQ(ApplyError(twin, J(R"({"moduleId":"m1"})")),
            R"(ArgumentInvalid: moduleId "m1" does not match the twin, which has no moduleId)");
  Value module = J(R"({"deviceId":"d","moduleId":"m1","etag":"AAAAAAAAAAE=","version":1})");
  EXPECT_EQ(ApplyError(module, J(R"({"moduleId":"m2"})")),
            R"(ArgumentInvalid: moduleId "m2" does not match the twin's moduleId "m1")");
  EXPECT_TRUE(Apply(module, J(R"({"deviceId":"d","moduleId":"m1","tags":{"a":1}})")).changed);
}

TEST(TwinPatchShapeTest, UnknownKeysAndWrongTypes) {
  Value twin = Twin("{}", "{}");
  EXPECT_EQ(ApplyError(twin, J(R"({"tags":{},"status":"disabled"})")),
            R"(ArgumentInvalid: unexpected key "status" in the patch; only "tags", "properties", )"
            R"("etag", "deviceId" and "moduleId" may be given)");
  EXPECT_EQ(ApplyError(twin, J(R"({"Tags":{}})")),
            R"(ArgumentInvalid: unexpected key "Tags" in the patch; only "tags", "properties", )"
            R"("etag", "deviceId" and "moduleId" may be given)");
  EXPECT_EQ(ApplyError(twin, J(R"({"properties":{"desired":{},"foo":1}})")),
            R"(ArgumentInvalid: unexpected key "foo" in properties; only "desired" and )"
            R"("reported" may be given)");
  EXPECT_EQ(ApplyError(twin, J(R"({"tags":null})")),
            "ArgumentInvalid: tags must be a JSON object, found null");
  EXPECT_EQ(ApplyError(twin, J(R"({"properties":[]})")),
            "ArgumentInvalid: properties must be a JSON object, found array");
  EXPECT_EQ(ApplyError(twin, J(R"({"properties":{"desired":"x"}})")),
            "ArgumentInvalid: properties.desired must be a JSON object, found string");
  EXPECT_EQ(ApplyError(twin, J("[1]")),
            "ArgumentInvalid: the patch must be a JSON object, found array");
  EXPECT_EQ(ApplyError(Value::Null(), J("{}")),
            "ArgumentInvalid: the twin must be a JSON object, found null");
}

// ---------------------------------------------------------------------------------------------
// If-Match

TEST(TwinPatchIfMatchTest, Forms) {
  Value twin = Twin("{}", "{}");  // etag AAAAAAAAAAc=
  Value patch = J(R"({"tags":{"a":1}})");
  for (std::string_view ok : {"*", "\"*\"", "", "\"\"", "AAAAAAAAAAc=", "\"AAAAAAAAAAc=\""}) {
    EXPECT_TRUE(Apply(twin, patch, ok).changed) << ok;
  }
  EXPECT_EQ(ApplyError(twin, patch, "\"AAAAAAAAAAE=\""),
            R"(PreconditionFailed: If-Match "AAAAAAAAAAE=" does not match the twin's etag )"
            R"("AAAAAAAAAAc=")");
  EXPECT_EQ(ApplyError(twin, patch, "aaaaaaaaaac="),
            R"(PreconditionFailed: If-Match "aaaaaaaaaac=" does not match the twin's etag )"
            R"("AAAAAAAAAAc=")");
  EXPECT_EQ(ApplyError(J(R"({"deviceId":"d"})"), patch, "x"),
            R"(PreconditionFailed: If-Match "x" does not match: the twin has no etag)");
  EXPECT_TRUE(Apply(J(R"({"deviceId":"d"})"), patch, "*").changed);
}

TEST(TwinPatchIfMatchTest, PreconditionIsCheckedBeforeTheContent) {
  Value twin = Twin("{}", "{}");
  std::string error = ApplyError(twin, J(R"({"bogus":1})"), "AAAAAAAAAAE=");
  EXPECT_EQ(error.substr(0, 19), "PreconditionFailed:");
  // A no-op patch with a stale etag still fails.
  error = ApplyError(twin, J("{}"), "AAAAAAAAAAE=");
  EXPECT_EQ(error.substr(0, 19), "PreconditionFailed:");
}

// ---------------------------------------------------------------------------------------------
// Validation (A.9)

Value TagsPatch(Value tags) { return Obj({{"tags", std::move(tags)}}); }
Value DesiredPatch(Value desired) {
  return Obj({{"properties", Obj({{"desired", std::move(desired)}})}});
}

TEST(TwinPatchValidationTest, KeyCharacters) {
  Value twin = Twin("{}", "{}");
  auto key_error = [&](std::string key) {
    return ApplyError(twin, TagsPatch(Obj({{std::move(key), Value::Number(1)}})));
  };
  EXPECT_EQ(key_error("a.b"), R"(ArgumentInvalid: tags: key "a.b" must not contain '.')");
  EXPECT_EQ(key_error("$a"), R"(ArgumentInvalid: tags: key "$a" must not contain '$')");
  EXPECT_EQ(key_error("a#"), R"(ArgumentInvalid: tags: key "a#" must not contain '#')");
  EXPECT_EQ(key_error("a b"), R"(ArgumentInvalid: tags: key "a b" must not contain ' ')");
  EXPECT_EQ(key_error("a\x07"),
            R"(ArgumentInvalid: tags: key "a\u0007" must not contain control character U+0007)");
  EXPECT_EQ(key_error("\x7f"),
            R"(ArgumentInvalid: tags: key "\u007F" must not contain control character U+007F)");
  EXPECT_EQ(key_error("x\xc2\x85"),
            R"(ArgumentInvalid: tags: key "x\u0085" must not contain control character U+0085)");
  EXPECT_EQ(key_error(""), R"(ArgumentInvalid: tags: key "" must not be empty)");
  EXPECT_EQ(key_error("a\xff"), R"(ArgumentInvalid: tags: key "a\xFF" is not valid UTF-8)");
  EXPECT_EQ(key_error("\xed\xa0\x80"),  // a UTF-16 surrogate
            R"(ArgumentInvalid: tags: key "\xED\xA0\x80" is not valid UTF-8)");
  // Fine: non-ASCII letters, punctuation other than . $ # space, '"' and '\'.
  EXPECT_TRUE(Apply(twin, TagsPatch(Obj({{"caf\xc3\xa9-_:/\"\\", Value::Number(1)}}))).changed);
  // The path names the parent, through arrays too.
  EXPECT_EQ(ApplyError(twin, J(R"({"properties":{"desired":{"a":{"b":[1,{"c.d":1}]}}}})")),
            R"(ArgumentInvalid: properties.desired.a.b[1]: key "c.d" must not contain '.')");
  // $-keys the service owns are not writable either.
  EXPECT_EQ(ApplyError(twin, J(R"({"properties":{"desired":{"$version":9}}})")),
            R"(ArgumentInvalid: properties.desired: key "$version" must not contain '$')");
}

TEST(TwinPatchValidationTest, KeyLength) {
  Value twin = Twin("{}", "{}");
  EXPECT_TRUE(
      Apply(twin, TagsPatch(Obj({{std::string(1024, 'k'), Value::Number(1)}}))).tags_changed);
  EXPECT_EQ(ApplyError(twin, TagsPatch(Obj({{std::string(1025, 'k'), Value::Number(1)}}))),
            R"(ArgumentInvalid: tags: key ")" + std::string(64, 'k') +
                R"(..." is 1025 bytes long; at most 1024 are allowed)");
}

// tags (or desired) with objects nested `levels` deep: l1 ... l<levels>, the last holding
// {"property": "value"} (the docs' depth example for levels == 10).
Value Deep(int levels, Value innermost = Obj({{"property", Str("value")}})) {
  Value v = std::move(innermost);
  for (int i = levels; i >= 1; --i) v = Obj({{"l" + std::to_string(i), v}});
  return v;
}

TEST(TwinPatchValidationTest, DepthTenIsFineElevenIsNot) {
  Value twin = Twin("{}", "{}");
  EXPECT_TRUE(Apply(twin, TagsPatch(Deep(10))).tags_changed);
  EXPECT_TRUE(Apply(twin, DesiredPatch(Deep(10))).desired_changed);
  std::string path = "l1.l2.l3.l4.l5.l6.l7.l8.l9.l10.l11";
  EXPECT_EQ(
      ApplyError(twin, TagsPatch(Deep(11))),
      "ArgumentInvalid: tags." + path + ": object nested 11 levels deep; at most 10 are allowed");
  EXPECT_EQ(ApplyError(twin, DesiredPatch(Deep(11))),
            "ArgumentInvalid: properties.desired." + path +
                ": object nested 11 levels deep; at most 10 are allowed");
  // Even an empty object, and a null-only object, one level too deep.
  EXPECT_EQ(ApplyError(twin, TagsPatch(Deep(10, Obj({{"e", Obj({})}})))),
            "ArgumentInvalid: tags.l1.l2.l3.l4.l5.l6.l7.l8.l9.l10.e: object nested 11 levels "
            "deep; at most 10 are allowed");
  // Arrays are not levels; objects inside them are.
  EXPECT_TRUE(Apply(twin, TagsPatch(Deep(10, Obj({{"a", J("[[1,[2]],3]")}})))).tags_changed);
  EXPECT_TRUE(Apply(twin, TagsPatch(Deep(9, Obj({{"a", J(R"([{"x":1}])")}})))).tags_changed);
  EXPECT_EQ(ApplyError(twin, TagsPatch(Deep(10, Obj({{"a", J(R"([[{"x":1}]])")}})))),
            "ArgumentInvalid: tags.l1.l2.l3.l4.l5.l6.l7.l8.l9.l10.a[0][0]: object nested 11 "
            "levels deep; at most 10 are allowed");
}

TEST(TwinPatchValidationTest, StringValues) {
  Value twin = Twin("{}", "{}");
  EXPECT_TRUE(Apply(twin, TagsPatch(Obj({{"s", Str(std::string(4096, 'v'))}}))).changed);
  EXPECT_EQ(ApplyError(twin, TagsPatch(Obj({{"s", Str(std::string(4097, 'v'))}}))),
            "ArgumentInvalid: tags.s: string value is 4097 bytes long; at most 4096 are allowed");
  // Bytes, not characters: 1366 x 3-byte characters = 4098 bytes.
  std::string euros;
  for (int i = 0; i < 1366; ++i) euros += "\xe2\x82\xac";
  EXPECT_EQ(ApplyError(twin, DesiredPatch(Obj({{"e", Str(euros)}}))),
            "ArgumentInvalid: properties.desired.e: string value is 4098 bytes long; at most "
            "4096 are allowed");
  EXPECT_EQ(
      ApplyError(twin, TagsPatch(Obj({{"a", Value::MakeArray({Str("ok"), Str("b\xc0\xaf")})}}))),
      "ArgumentInvalid: tags.a[1]: string value is not valid UTF-8");
  EXPECT_EQ(ApplyError(twin, TagsPatch(Obj({{"u", Value()}}))),
            "ArgumentInvalid: tags.u: value is undefined");
}

TEST(TwinPatchValidationTest, IntegerRange) {
  Value twin = Twin("{}", "{}");
  for (std::string_view ok : {"4503599627370495", "-4503599627370496", "0", "-1", "1.5",
                              "4503599627370495.5", "123456789012345678.9e-3", "1e-300", "-0"}) {
    EXPECT_TRUE(Apply(twin, J(R"({"tags":{"n":)" + std::string(ok) + "}}")).changed) << ok;
  }
  EXPECT_EQ(ApplyError(twin, J(R"({"tags":{"n":4503599627370496}})")),
            "ArgumentInvalid: tags.n: integer 4503599627370496 is outside the allowed range "
            "-4503599627370496..4503599627370495");
  EXPECT_EQ(ApplyError(twin, J(R"({"tags":{"a":[-4503599627370497]}})")),
            "ArgumentInvalid: tags.a[0]: integer -4503599627370497 is outside the allowed range "
            "-4503599627370496..4503599627370495");
  // No integer/float distinction survives parsing: 1e20 is an integral value, and so is every
  // double of magnitude 2^52 or more.
  EXPECT_EQ(ApplyError(twin, J(R"({"tags":{"n":-2.5e300}})")).substr(0, 42),
            "ArgumentInvalid: tags.n: integer -2.5e+300");
  EXPECT_EQ(ApplyError(twin, J(R"({"properties":{"desired":{"n":1e20}}})")),
            "ArgumentInvalid: properties.desired.n: integer 1e+20 is outside the allowed range "
            "-4503599627370496..4503599627370495");
  EXPECT_EQ(
      ApplyError(twin,
                 TagsPatch(Obj({{"n", Value::Number(std::numeric_limits<double>::infinity())}}))),
      "ArgumentInvalid: tags.n: number is not finite");
  EXPECT_EQ(ApplyError(twin, TagsPatch(Obj({{"n", Value::Number(std::nan(""))}}))),
            "ArgumentInvalid: tags.n: number is not finite");
}

TEST(TwinPatchValidationTest, FirstErrorInOrderAndRejectedWhole) {
  Value twin = Twin("{}", "{}");
  // tags are checked before desired whatever the key order; within a section, document order.
  EXPECT_EQ(ApplyError(twin, J(R"({"properties":{"desired":{"a b":1}},"tags":{"ok":1,"c.d":1}})")),
            R"(ArgumentInvalid: tags: key "c.d" must not contain '.')");
  // Shape errors come before content errors.
  EXPECT_EQ(ApplyError(twin, J(R"({"tags":{"c.d":1},"x":1})")).substr(0, 37),
            R"(ArgumentInvalid: unexpected key "x" i)");
}

TEST(TwinPatchValidationTest, SectionSizesAtTheLimit) {
  Value twin = Twin("{}", "{}");
  std::string s4095(4095, 'v');
  // tags: 2 x (1 + 4095) = 8192.
  PatchResult r = Apply(twin, TagsPatch(Obj({{"a", Str(s4095)}, {"b", Str(s4095)}})));
  EXPECT_TRUE(r.tags_changed);
  EXPECT_EQ(TwinSectionSize(Tags(r.twin)), 8192u);
  EXPECT_EQ(ApplyError(twin, TagsPatch(Obj({{"a", Str(s4095)}, {"b", Str(s4095 + "v")}}))),
            "ArgumentInvalid: tags would be 8193 bytes after this update; at most 8192 are "
            "allowed");
  // The size is that of the section after applying.
  EXPECT_EQ(ApplyError(r.twin, J(R"({"tags":{"c":true}})")),
            "ArgumentInvalid: tags would be 8197 bytes after this update; at most 8192 are "
            "allowed");
  EXPECT_TRUE(Apply(r.twin, J(R"({"tags":{"a":null,"c":true}})")).tags_changed);

  // desired: 8 x (1 + 4095) = 32768; $metadata and $version are not counted.
  Object full;
  for (char c = 'a'; c <= 'h'; ++c) full.emplace_back(std::string(1, c), Str(s4095));
  r = Apply(twin, DesiredPatch(Obj(full)));
  ASSERT_TRUE(r.desired_changed);
  EXPECT_EQ(TwinSectionSize(Desired(r.twin)), 32768u);
  EXPECT_EQ(ApplyError(r.twin, J(R"({"properties":{"desired":{"z":1}}})")),
            "ArgumentInvalid: properties.desired would be 32777 bytes after this update; at most "
            "32768 are allowed");
  EXPECT_TRUE(Apply(r.twin, J(R"({"properties":{"desired":{"a":"v","z":1}}})")).desired_changed);
  // An unchanged oversized section is not re-checked (a tags-only patch on an over-full desired).
  full.emplace_back("i", Value::Number(1));
  Value oversized = Obj({{"deviceId", Str("d")}, {"properties", Obj({{"desired", Obj(full)}})}});
  EXPECT_TRUE(Apply(oversized, J(R"({"tags":{"t":1}})")).tags_changed);
}

TEST(TwinPatchValidationTest, SectionSizeAlgorithm) {
  EXPECT_EQ(TwinSectionSize(J(R"({})")), 0u);
  EXPECT_EQ(TwinSectionSize(J(R"({"a":1,"bb":true,"c":"xyz","d":{"e":null}})")),
            (1 + 8) + (2 + 4) + (1 + 3) + (1 + (1 + 4)));
  EXPECT_EQ(TwinSectionSize(J(R"({"arr":[1,"ab",null,[true],{"k":1}]})")),
            3 + 8 + 2 + 4 + 4 + (1 + 8));
  // UTF-8 bytes; control characters (C0, DEL, C1) not counted.
  EXPECT_EQ(TwinSectionSize(J(R"({"s":"a\u0001b\u007f\u0085c\t"})")), 1u + 3);
  EXPECT_EQ(TwinSectionSize(J(R"({"\u00e9":"\u00e9\u20ac"})")), 2u + 5);
  // $metadata / $version only at the root.
  EXPECT_EQ(TwinSectionSize(J(R"({"$metadata":{"x":1},"$version":3,"x":{"$version":1}})")),
            1u + 8 + 8);
}

TEST(TwinPatchValidationTest, JobCharset) {
  Value twin = Twin("{}", "{}");
  PatchOptions job = Options(true);
  EXPECT_TRUE(
      Apply(twin, J(R"({"tags":{"ok-key_1":"v.a~l#ue!","n":5,"b":true,"a":["x"]}})"), "*", job)
          .changed);
  EXPECT_EQ(ApplyError(twin, J(R"({"tags":{"a(b":1}})"), "*", job),
            R"(ArgumentInvalid: tags: key "a(b" contains '(', which is not allowed in job )"
            "property names");
  EXPECT_EQ(ApplyError(twin, J(R"({"properties":{"desired":{"t":"12:00"}}})"), "*", job),
            "ArgumentInvalid: properties.desired.t: string value contains ':', which is not "
            "allowed in job property values");
  EXPECT_EQ(ApplyError(twin, J(R"({"tags":{"t":"a b"}})"), "*", job),
            "ArgumentInvalid: tags.t: string value contains ' ', which is not allowed in job "
            "property values");
  EXPECT_EQ(ApplyError(twin, J(R"({"tags":{"t":"a\tb"}})"), "*", job),
            "ArgumentInvalid: tags.t: string value contains U+0009, which is not allowed in job "
            "property values");
  EXPECT_EQ(ApplyError(twin, J(R"({"tags":{"o":{"caf\u00e9":1}}})"), "*", job),
            "ArgumentInvalid: tags.o: key \"caf\xc3\xa9\" contains U+00E9, which is not allowed "
            "in job property names");
  EXPECT_EQ(ApplyError(twin, J(R"({"tags":{"a":["ok","x{"]}})"), "*", job),
            "ArgumentInvalid: tags.a[1]: string value contains '{', which is not allowed in job "
            "property values");
  for (char c : std::string_view("$()<>@,;:\\\"/[]?={}")) {
    Value patch = TagsPatch(Obj({{"v", Str(std::string("x") + c)}}));
    EXPECT_FALSE(ApplyTwinPatch(twin, patch, "*", job).ok()) << c;
    EXPECT_TRUE(ApplyTwinPatch(twin, patch, "*", Options()).ok()) << c;
  }
  // A.9 key rules are reported first.
  EXPECT_EQ(ApplyError(twin, J(R"({"tags":{"a b":1}})"), "*", job),
            R"(ArgumentInvalid: tags: key "a b" must not contain ' ')");
}

// A twin job applies one patch to every target, and a thread does not check a section again
// that it found valid the time before (the same storage). That must never let a section
// through that is invalid under the options now, nor a patch built where a dropped one was
// (an allocator hands the same addresses out again).
TEST(TwinPatchValidationTest, ARepeatedPatchIsCheckedUnderItsOwnOptions) {
  Value twin = Twin("{}", "{}");
  Value patch = J(R"({"tags":{"t":"a"},"properties":{"desired":{"d":"12:00"}}})");
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(ApplyTwinPatch(twin, patch, "*", Options()).ok());
    EXPECT_EQ(ApplyError(twin, patch, "*", Options(true)),
              "ArgumentInvalid: properties.desired.d: string value contains ':', which is not "
              "allowed in job property values");
  }
  for (int i = 0; i < 20; ++i) {
    Value tags = Obj({{"k", Str("v")}});
    Value valid = Obj({{"tags", tags}});
    EXPECT_TRUE(ApplyTwinPatch(twin, valid, "*", Options()).ok());
    valid = Value();
    tags = Value();  // its storage is the block freed last
    tags = Obj({{"k.", Str("v")}});
    Value invalid = Obj({{"tags", tags}});
    EXPECT_EQ(ApplyError(twin, invalid), R"(ArgumentInvalid: tags: key "k." must not contain '.')");
  }
}

// ---------------------------------------------------------------------------------------------
// Replace

TEST(TwinPatchReplaceTest, ReplacesWholesaleKeepingOrder) {
  Value twin = Twin(R"({"a":1,"b":{"x":1,"y":2},"c":3})", R"({"p":1,"q":{"r":1,"s":2}})");
  PatchResult r = Replace(twin, J(R"({"tags":{"n":0,"b":{"y":2,"z":null},"a":1},
                                      "properties":{"desired":{"q":{"s":2},"new":[1]}}})"));
  EXPECT_EQ(ToJson(Tags(r.twin)), R"({"a":1,"b":{"y":2},"n":0})");
  EXPECT_EQ(DesiredContent(r.twin), R"({"q":{"s":2},"new":[1]})");
  std::string now = kNow;
  std::string head = R"({"$lastUpdated":")" + now + R"(","$lastUpdatedVersion":5)";
  EXPECT_EQ(ToJson(Meta(r.twin)), head + R"(,"q":)" + head + R"(,"s":)" + Stamp(kOld, 4) +
                                      R"(},"new":)" + Stamp(kNow, 5) + "}");
  EXPECT_EQ(ToJson(Field(r.twin, "version")), "9");
}

TEST(TwinPatchReplaceTest, AbsentSectionsAreEmptied) {
  Value twin = Twin(R"({"a":1})", R"({"p":1})");
  PatchResult r = Replace(twin, J(R"({"tags":{"a":1}})"));
  EXPECT_FALSE(r.tags_changed);
  EXPECT_TRUE(r.desired_changed);
  EXPECT_EQ(DesiredContent(r.twin), "{}");
  r = Replace(twin, J(R"({"properties":{"desired":{"p":1}}})"));
  EXPECT_TRUE(r.tags_changed);
  EXPECT_FALSE(r.desired_changed);
  EXPECT_EQ(ToJson(Tags(r.twin)), "{}");
}

TEST(TwinPatchReplaceTest, SameContentIsNoChange) {
  Value twin = Twin(R"({"a":1,"b":{"x":1}})", R"({"p":1})");
  PatchResult r =
      Replace(twin, J(R"({"tags":{"b":{"x":1},"a":1,"gone":null},"properties":{"desired":{"p":1},
                          "reported":{}},"etag":"*","deviceId":"devA"})"));
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(ToJson(r.twin), ToJson(twin));
}

TEST(TwinPatchReplaceTest, SameValidationAndPrecondition) {
  Value twin = Twin("{}", "{}");
  Expected<PatchResult> r = ReplaceTwin(twin, J(R"({"tags":{"a":1},"version":3})"), "*", Options());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            R"(ArgumentInvalid: unexpected key "version" in the replacement; only "tags", )"
            R"("properties", "etag", "deviceId" and "moduleId" may be given)");
  r = ReplaceTwin(twin, TagsPatch(Deep(11)), "*", Options());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.substr(0, 21), "ArgumentInvalid: tags");
  r = ReplaceTwin(twin, J("{}"), "\"AAAAAAAAAAA=\"", Options());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.substr(0, 19), "PreconditionFailed:");
}

// ---------------------------------------------------------------------------------------------
// Etags and timestamps

TEST(TwinPatchEtagTest, EtagForVersion) {
  EXPECT_EQ(EtagForVersion(0), "AAAAAAAAAAA=");
  EXPECT_EQ(EtagForVersion(7), "AAAAAAAAAAc=");
  EXPECT_EQ(EtagForVersion(9), "AAAAAAAAAAk=");
  EXPECT_EQ(EtagForVersion(256), "AAAAAAAAAQA=");
  EXPECT_EQ(EtagForVersion(UINT64_MAX), "//////////8=");
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{7}, uint64_t{63}, uint64_t{64},
                     uint64_t{1} << 40, UINT64_MAX - 1, UINT64_MAX}) {
    EXPECT_EQ(EtagCounter(EtagForVersion(v)), v) << v;
  }
  EXPECT_EQ(EtagCounter("NTk0ODUyODgx"), std::nullopt);  // 12 chars, no padding
  EXPECT_EQ(EtagCounter("AAAAAAAAAAd="), std::nullopt);  // non-zero padding bits
  EXPECT_EQ(EtagCounter("AAAAAAAAA*c="), std::nullopt);
  EXPECT_EQ(EtagCounter("AAAAAAAAAAc"), std::nullopt);
  EXPECT_EQ(EtagCounter(""), std::nullopt);
}

TEST(TwinPatchEtagTest, FormatTimestamp) {
  EXPECT_EQ(FormatTimestamp(0), "1970-01-01T00:00:00.0000000Z");
  EXPECT_EQ(FormatTimestamp(1), "1970-01-01T00:00:00.0000001Z");
  EXPECT_EQ(FormatTimestamp(-1), "1969-12-31T23:59:59.9999999Z");
  // 2026-11-26T18:00:00Z = 1795716000 s.
  EXPECT_EQ(FormatTimestamp(int64_t{1795716000} * 10000000), kNow);
  // 2024-02-29T12:34:56.789Z (leap day) = 1709210096.789 s.
  EXPECT_EQ(FormatTimestamp(int64_t{17092100967890000}), "2024-02-29T12:34:56.7890000Z");
  // 2000-03-01 (after a leap century's Feb 29) = 951868800 s.
  EXPECT_EQ(FormatTimestamp(int64_t{951868800} * 10000000), "2000-03-01T00:00:00.0000000Z");
  EXPECT_EQ(FormatTimestamp(INT64_MIN), "0001-01-01T00:00:00.0000000Z");
  EXPECT_EQ(FormatTimestamp(INT64_MAX), "9999-12-31T23:59:59.9999999Z");
  EXPECT_EQ(FormatTimestamp(int64_t{-62135596800} * 10000000), "0001-01-01T00:00:00.0000000Z");
}

// ---------------------------------------------------------------------------------------------
// Randomized: the merge against an independent merge-patch model; metadata invariants.

// RFC 7386 as written in the RFC, over ordered objects (existing keys stay, new keys append).
Value ModelMergePatch(const Value& target, const Value& patch) {
  if (!patch.is_object()) return patch;
  Object result = target.is_object() ? target.as_object() : Object{};
  for (const auto& [key, value] : patch.as_object()) {
    const std::string& name = key;  // (clang 14 cannot capture a structured binding)
    auto it = std::find_if(result.begin(), result.end(),
                           [&](const Member& m) { return m.first == name; });
    if (value.is_null()) {
      if (it != result.end()) result.erase(it);
    } else if (it != result.end()) {
      it->second = ModelMergePatch(it->second, value);
    } else {
      result.emplace_back(key, ModelMergePatch(Value(), value));
    }
  }
  return Obj(std::move(result));
}

// Objects with keys sorted, recursively (order-insensitive comparison).
Value Canonical(const Value& v) {
  if (v.is_array()) {
    Array a;
    for (const Value& e : v.as_array()) a.push_back(Canonical(e));
    return Value::MakeArray(std::move(a));
  }
  if (!v.is_object()) return v;
  Object o;
  for (const auto& [k, c] : v.as_object()) o.emplace_back(k, Canonical(c));
  std::sort(o.begin(), o.end(), [](const Member& a, const Member& b) { return a.first < b.first; });
  return Obj(std::move(o));
}

Value WithoutReserved(const Value& desired) {
  Object o;
  if (desired.is_object()) {
    for (const auto& m : desired.as_object()) {
      if (m.first != "$metadata" && m.first != "$version") o.push_back(m);
    }
  }
  return Obj(std::move(o));
}

class Random {
 public:
  // `width`: keys per object at most; wide objects exercise the hashed key lookups.
  explicit Random(uint32_t seed, int width = 5) : rng_(seed), width_(width) {}
  int Int(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  std::string Key() {
    return width_ <= 5 ? std::string(1, "abcde"[Int(5)]) : "k" + std::to_string(Int(width_ + 4));
  }
  Value Leaf() {
    switch (Int(5)) {
      case 0:
        return Value::Number(Int(4));
      case 1:
        return Str("s" + std::to_string(Int(3)));
      case 2:
        return Value::Bool(Int(2) == 1);
      case 3:
        return Value::Number(Int(3) + 0.5);
      default: {
        Array a;
        for (int i = Int(3); i > 0; --i) a.push_back(Int(4) == 0 ? Value::Null() : Leaf());
        return Value::MakeArray(std::move(a));
      }
    }
  }
  // Stored content: no nulls as member values.
  Value Content(int depth) {
    Object o;
    for (int i = Int(width_); i > 0; --i) {
      std::string k = Key();
      if (std::any_of(o.begin(), o.end(), [&](const Member& m) { return m.first == k; })) continue;
      o.emplace_back(k,
                     depth < MaxDepth() && Int(Wide() ? 8 : 3) == 0 ? Content(depth + 1) : Leaf());
    }
    return Obj(std::move(o));
  }
  // A patch: like content, plus nulls.
  Value Patch(int depth) {
    Object o;
    for (int i = Int(width_ - 1); i > 0; --i) {
      std::string k = Key();
      if (std::any_of(o.begin(), o.end(), [&](const Member& m) { return m.first == k; })) continue;
      int pick = Int(10);
      o.emplace_back(k, pick < 3                         ? Value::Null()
                        : pick < 6 && depth < MaxDepth() ? Patch(depth + 1)
                                                         : Leaf());
    }
    return Obj(std::move(o));
  }

 private:
  // Wide objects nest less, to stay within the section sizes.
  bool Wide() const { return width_ > 5; }
  int MaxDepth() const { return Wide() ? 2 : 3; }
  std::mt19937 rng_;
  int width_;
};

// The metadata of a desired section after an update: an entry for exactly the keys of `after`,
// recursively; stamped kNow where the value differs from `before`, kOld elsewhere.
void CheckMetadata(const Value& before, const Value& after, const Value& meta,
                   const std::string& path, int desired_version) {
  ASSERT_TRUE(meta.is_object()) << path;
  bool changed = !(before == after);
  const Value* updated = meta.Find("$lastUpdated");
  ASSERT_NE(updated, nullptr) << path;
  EXPECT_EQ(updated->as_string(), changed ? kNow : kOld) << path;
  const Value* version = meta.Find("$lastUpdatedVersion");
  ASSERT_NE(version, nullptr) << path;
  EXPECT_EQ(version->as_number(), changed ? desired_version : 4) << path;
  size_t children = 0;
  for (const auto& [k, v] : meta.as_object()) {
    if (k == "$lastUpdated" || k == "$lastUpdatedVersion") continue;
    ++children;
    ASSERT_TRUE(after.is_object() && after.Find(k) != nullptr) << path << "." << k;
  }
  if (!after.is_object()) {
    EXPECT_EQ(children, 0u) << path;
    return;
  }
  EXPECT_EQ(children, after.as_object().size()) << path;
  for (const auto& [k, v] : after.as_object()) {
    const Value* child_meta = meta.Find(k);
    ASSERT_NE(child_meta, nullptr) << path << "." << k;
    const Value* child_before = before.is_object() ? before.Find(k) : nullptr;
    CheckMetadata(child_before != nullptr ? *child_before : Value(), v, *child_meta, path + "." + k,
                  desired_version);
  }
}

void CheckUpdate(const Value& twin, const PatchResult& r, const Value& want_tags,
                 const Value& want_desired, bool ordered) {
  const Value& old_tags = Tags(twin).is_object() ? Tags(twin) : Obj({});
  Value old_desired = WithoutReserved(Desired(twin));
  bool tags_changed = !(Canonical(want_tags) == Canonical(old_tags));
  bool desired_changed = !(Canonical(want_desired) == Canonical(old_desired));
  ASSERT_EQ(r.tags_changed, tags_changed) << ToJson(twin) << "\n"
                                          << ToJson(want_tags) << "\n"
                                          << ToJson(r.twin);
  ASSERT_EQ(r.desired_changed, desired_changed) << ToJson(twin) << "\n" << ToJson(r.twin);
  if (!r.changed) {
    EXPECT_EQ(ToJson(r.twin), ToJson(twin));
    return;
  }
  const Value& new_tags = Tags(r.twin).is_object() ? Tags(r.twin) : Obj({});
  Value new_desired = WithoutReserved(Desired(r.twin));
  if (ordered) {
    EXPECT_EQ(ToJson(new_tags), ToJson(want_tags));
    EXPECT_EQ(ToJson(new_desired), ToJson(want_desired));
  } else {
    EXPECT_EQ(ToJson(Canonical(new_tags)), ToJson(Canonical(want_tags)));
    EXPECT_EQ(ToJson(Canonical(new_desired)), ToJson(Canonical(want_desired)));
  }
  EXPECT_EQ(Field(r.twin, "version").as_number(), Field(twin, "version").as_number() + 1);
  EXPECT_NE(Field(r.twin, "etag").as_string(), Field(twin, "etag").as_string());
  int desired_version = desired_changed ? 5 : 4;
  EXPECT_EQ(Field(Desired(r.twin), "$version").as_number(), desired_version);
  CheckMetadata(old_desired, new_desired, Meta(r.twin), "$metadata", desired_version);
  // The rest of the twin is untouched.
  EXPECT_EQ(ToJson(Field(Field(r.twin, "properties"), "reported")),
            ToJson(Field(Field(twin, "properties"), "reported")));
  EXPECT_EQ(ToJson(Field(r.twin, "deviceId")), ToJson(Field(twin, "deviceId")));
}

TEST(TwinPatchRandomTest, MergeMatchesTheModel) {
  Random random(20261126);
  for (int iteration = 0; iteration < 3000; ++iteration) {
    SCOPED_TRACE(iteration);
    Value twin = Twin(ToJson(random.Content(0)), ToJson(random.Content(0)));
    Object patch;
    if (random.Int(4) != 0) patch.emplace_back("tags", random.Patch(0));
    if (random.Int(4) != 0) {
      patch.emplace_back("properties", Obj({{"desired", random.Patch(0)}}));
    }
    Value patch_value = Obj(std::move(patch));
    PatchResult r = Apply(twin, patch_value);
    const Value* tags_patch = patch_value.Find("tags");
    const Value* desired_patch = Field(patch_value, "properties").Find("desired");
    Value want_tags = tags_patch ? ModelMergePatch(Tags(twin), *tags_patch) : Tags(twin);
    Value old_desired = WithoutReserved(Desired(twin));
    Value want_desired = desired_patch ? ModelMergePatch(old_desired, *desired_patch) : old_desired;
    CheckUpdate(twin, r, want_tags, want_desired, /*ordered=*/true);
    if (HasFatalFailure() || HasFailure()) return;
  }
}

TEST(TwinPatchRandomTest, WideObjectsMatchTheModel) {
  Random random(31337, 40);
  for (int iteration = 0; iteration < 100; ++iteration) {
    SCOPED_TRACE(iteration);
    Value twin = Twin(ToJson(random.Content(0)), ToJson(random.Content(0)));
    Value tags_patch = random.Patch(0);
    Value desired_patch = random.Patch(0);
    Value patch = Obj({{"tags", tags_patch}, {"properties", Obj({{"desired", desired_patch}})}});
    PatchResult r = Apply(twin, patch);
    Value old_desired = WithoutReserved(Desired(twin));
    CheckUpdate(twin, r, ModelMergePatch(Tags(twin), tags_patch),
                ModelMergePatch(old_desired, desired_patch), /*ordered=*/true);
    if (HasFailure()) return;
    PatchResult replaced = Replace(twin, patch);
    CheckUpdate(twin, replaced, ModelMergePatch(Value(), tags_patch),
                ModelMergePatch(Value(), desired_patch), /*ordered=*/false);
    if (HasFailure()) return;
  }
}

TEST(TwinPatchRandomTest, ReplaceMatchesTheModel) {
  Random random(7);
  for (int iteration = 0; iteration < 3000; ++iteration) {
    SCOPED_TRACE(iteration);
    Value twin = Twin(ToJson(random.Content(0)), ToJson(random.Content(0)));
    // Replacements: random patches (nulls mean absent), or the twin's own content perturbed.
    Value tags = random.Int(3) == 0 ? Tags(twin) : random.Patch(0);
    Value desired = random.Int(3) == 0 ? WithoutReserved(Desired(twin)) : random.Patch(0);
    Object replacement;
    if (random.Int(5) != 0) replacement.emplace_back("tags", tags);
    if (random.Int(5) != 0) replacement.emplace_back("properties", Obj({{"desired", desired}}));
    Value replacement_value = Obj(std::move(replacement));
    PatchResult r = Replace(twin, replacement_value);
    const Value* t = replacement_value.Find("tags");
    const Value* d = Field(replacement_value, "properties").Find("desired");
    Value want_tags = ModelMergePatch(Value(), t ? *t : Obj({}));
    Value want_desired = ModelMergePatch(Value(), d ? *d : Obj({}));
    CheckUpdate(twin, r, want_tags, want_desired, /*ordered=*/false);
    if (HasFatalFailure() || HasFailure()) return;
  }
}

TEST(TwinPatchRandomTest, PatchesComposeAndAreIdempotent) {
  // Applying the same patch twice: the second application changes nothing.
  Random random(99);
  for (int iteration = 0; iteration < 1000; ++iteration) {
    SCOPED_TRACE(iteration);
    Value twin = Twin(ToJson(random.Content(0)), ToJson(random.Content(0)));
    Value patch =
        Obj({{"tags", random.Patch(0)}, {"properties", Obj({{"desired", random.Patch(0)}})}});
    PatchResult once = Apply(twin, patch);
    PatchResult twice = Apply(once.twin, patch);
    EXPECT_FALSE(twice.changed) << ToJson(patch);
    EXPECT_EQ(ToJson(twice.twin), ToJson(once.twin));
    if (HasFailure()) return;
  }
}

}  // namespace
}  // namespace twinq::index
