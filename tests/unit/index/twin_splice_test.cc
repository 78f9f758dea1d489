// The patch fast path (index/twin_splice.h): the scanner and splicer on their own, and the fleet
// with the fast path on against the same fleet with it off (the whole-document oracle), byte for
// byte, on hand-picked sequences that reach every branch: a twin patched twice in one batch, a
// patched device deleted with its modules, module twins, errors, If-Match, missing sections,
// no-op patches and documents the scanner refuses. index_oracle_test.cc runs the random
// sequences both ways against its shadow model.
#include "index/twin_splice.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/common/json_reader.h"
#include "engine/common/value.h"
#include "index/fleet.h"
#include "index/fleet_gen.h"
#include "index/table.h"

namespace twinq::index {

// index_oracle_test.cc
::testing::AssertionResult CheckTableAgainstDocuments(const Table& table,
                                                      const std::vector<Value>& docs,
                                                      bool every_value_held = true);

namespace {

Value J(std::string_view text) {
  Expected<Value> v = ParseJson(text, "test");
  EXPECT_TRUE(v.ok()) << text;
  return v.ok() ? *v : Value();
}

std::string Span(std::string_view json, const JsonSpan& s) {
  return s.found() ? std::string(s.in(json)) : "<absent>";
}

TEST(TwinSpliceTest, FindsTheSections) {
  std::string doc =
      R"({"deviceId":"d","etag":"AAAAAAAAAAE=","version":3,"tags":{"a":{"b":[1,"}"]}},)"
      R"("properties":{"desired":{"x":"q\"}","$version":2},"reported":{"y":1}},"z":null})";
  auto s = ScanTwinSections(doc);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(Span(doc, s->etag), R"("AAAAAAAAAAE=")");
  EXPECT_EQ(Span(doc, s->version), "3");
  EXPECT_EQ(Span(doc, s->tags), R"({"a":{"b":[1,"}"]}})");
  EXPECT_EQ(Span(doc, s->desired), R"({"x":"q\"}","$version":2})");
  // Not asking for a section: it is not looked for.
  auto t = ScanTwinSections(doc, /*tags=*/true, /*desired=*/false);
  ASSERT_TRUE(t.has_value());
  EXPECT_FALSE(t->desired.found());
  EXPECT_EQ(Span(doc, t->tags), R"({"a":{"b":[1,"}"]}})");
}

TEST(TwinSpliceTest, WhitespaceAndMissingMembers) {
  std::string doc = " { \"deviceId\" : \"d\" ,\n \"tags\" :\t{ } , \"properties\" : { } } ";
  auto s = ScanTwinSections(doc);
  ASSERT_TRUE(s.has_value());
  EXPECT_FALSE(s->etag.found());
  EXPECT_FALSE(s->version.found());
  EXPECT_FALSE(s->desired.found());
  EXPECT_EQ(Span(doc, s->tags), "{ }");
  auto e = ScanTwinSections("{}");
  ASSERT_TRUE(e.has_value());
  EXPECT_FALSE(e->tags.found());
}

TEST(TwinSpliceTest, RefusesWhatItCannotVouchFor) {
  for (const char* bad : {
           "",
           "[]",
           "\"x\"",
           "{",
           "{\"a\":}",
           "{\"a\" 1}",
           "{\"a\":1,}",
           "{\"a\":1} x",
           R"({"t\u0061gs":{},"etag":"e","version":1})",        // an escaped key
           R"({"etag":"e","etag":"f","version":1,"tags":{}})",  // a repeated key
           R"({"etag":"e","version":1,"properties":{"desired":{},"desired":{}}})",
           R"({"etag":"e","version":1,"tags":{"a":"unterminated})",  // unbalanced
           R"({"etag":"e","version":1,"tags":{"a":[1,2}})",
       }) {
    EXPECT_FALSE(ScanTwinSections(bad).has_value()) << bad;
  }
  // The scan stops once it has everything: what follows is not read.
  auto s = ScanTwinSections(R"({"etag":"e","version":1,"tags":{}, this is not JSON)", true, false);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->tags.end, s->tags.begin + 2);
}

TEST(TwinSpliceTest, EscapedQuotesAndBackslashesInStrings) {
  std::string doc =
      R"({"etag":"a\\","version":1,"tags":{"k":"\\\"}\\"},"properties":{"desired":{}}})";
  auto s = ScanTwinSections(doc);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(Span(doc, s->etag), R"("a\\")");
  EXPECT_EQ(Span(doc, s->tags), R"({"k":"\\\"}\\"})");
  EXPECT_EQ(Span(doc, s->desired), "{}");
}

TEST(TwinSpliceTest, ObjectMembers) {
  std::string doc = R"({"tags":{"a":1,"bb":{"x":[1,{"y":"}"}]},"c":"q\"r"},"z":0})";
  auto s = ScanTwinSections(doc, true, false);
  ASSERT_TRUE(s.has_value());
  auto m = ScanObjectMembers(doc, s->tags);
  ASSERT_TRUE(m.has_value());
  ASSERT_EQ(m->size(), 3u);
  EXPECT_EQ((*m)[0].key, "a");
  EXPECT_EQ(Span(doc, (*m)[0].member), R"("a":1)");
  EXPECT_EQ(Span(doc, (*m)[0].value), "1");
  EXPECT_EQ((*m)[1].key, "bb");
  EXPECT_EQ(Span(doc, (*m)[1].value), R"({"x":[1,{"y":"}"}]})");
  EXPECT_EQ(Span(doc, (*m)[2].member), R"("c":"q\"r")");
  // Whitespace around members is allowed and not part of them; an empty object has none.
  std::string spaced = R"({ "k" : [ 1 ] , "l":2 })";
  auto w = ScanObjectMembers(spaced, JsonSpan{0, spaced.size()});
  ASSERT_TRUE(w.has_value());
  ASSERT_EQ(w->size(), 2u);
  EXPECT_EQ(Span(spaced, (*w)[0].member), R"("k" : [ 1 ])");
  EXPECT_EQ(Span(spaced, (*w)[1].member), R"("l":2)");
  std::string empty = "{ }";
  auto e = ScanObjectMembers(empty, JsonSpan{0, empty.size()});
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->empty());
}

// The scan lists the members of tags and desired as it passes them: what ScanObjectMembers
// reports for their spans, or nothing where it refuses them.
TEST(TwinSpliceTest, SectionsListTheirMembers) {
  auto same = [](std::string_view doc, const JsonSpan& span,
                 const std::optional<std::vector<JsonMember>>& listed) {
    auto members = ScanObjectMembers(doc, span);
    ASSERT_EQ(listed.has_value(), members.has_value()) << doc;
    if (!listed) return;
    ASSERT_EQ(listed->size(), members->size());
    for (size_t i = 0; i < listed->size(); ++i) {
      EXPECT_EQ((*listed)[i].key, (*members)[i].key);
      EXPECT_EQ(Span(doc, (*listed)[i].member), Span(doc, (*members)[i].member));
      EXPECT_EQ(Span(doc, (*listed)[i].value), Span(doc, (*members)[i].value));
    }
  };
  std::string doc =
      R"({"etag":"e","version":2,"tags":{ "a" : 1 ,"b":{"c":"}"}},)"
      R"("properties":{"reported":{},"desired":{"x":[1],"$metadata":{},"$version":3}}})";
  auto s = ScanTwinSections(doc);
  ASSERT_TRUE(s.has_value());
  ASSERT_TRUE(s->tag_members.has_value());
  ASSERT_EQ(s->tag_members->size(), 2u);
  EXPECT_EQ(Span(doc, (*s->tag_members)[0].member), R"("a" : 1)");
  EXPECT_EQ(Span(doc, (*s->tag_members)[1].value), R"({"c":"}"})");
  same(doc, s->tags, s->tag_members);
  ASSERT_TRUE(s->desired_members.has_value());
  EXPECT_EQ(s->desired_members->size(), 3u);
  same(doc, s->desired, s->desired_members);
  // Sections it cannot vouch for are still found, but not listed.
  for (std::string bad : {
           R"({"etag":"e","version":2,"tags":{"\u0061":1},"properties":{"desired":{"a":1,"a":2}}})",
           R"({"etag":"e","version":2,"tags":[1],"properties":{"desired":"x"}})",
           R"({"etag":"e","version":2,"tags":{"a":1 "b":2},"properties":{"desired":{"a" 1}}})",
       }) {
    auto b = ScanTwinSections(bad);
    ASSERT_TRUE(b.has_value()) << bad;
    EXPECT_TRUE(b->tags.found()) << bad;
    EXPECT_TRUE(b->desired.found()) << bad;
    EXPECT_FALSE(b->tag_members.has_value()) << bad;
    same(bad, b->tags, b->tag_members);
    same(bad, b->desired, b->desired_members);
  }
  // A section not asked for is not listed.
  auto t = ScanTwinSections(doc, /*tags=*/false, /*desired=*/true);
  ASSERT_TRUE(t.has_value());
  EXPECT_FALSE(t->tag_members.has_value());
  EXPECT_TRUE(t->desired_members.has_value());
}

// Strings of every length up to past the scanner's 32-byte look-ahead, with an escaped quote or
// backslash at every place, at the end of the text or before more of it: each member's value is
// the string as written, and a key holding a backslash is refused.
TEST(TwinSpliceTest, StringsOfEveryLengthAndEscape) {
  for (size_t len = 0; len <= 40; ++len) {
    for (size_t at = 0; at <= len; ++at) {
      for (std::string_view escape : {"", R"(\\)", R"(\")", R"(\\\")"}) {
        std::string body(len, 'x');
        body.insert(at, escape);
        std::string value = "\"" + body + "\"";
        for (std::string_view tail : {"}", R"(     ,"after":"and more text after it"})"}) {
          std::string doc = "{\"etag\":\"e\",\"version\":1,\"tags\":{\"k\":" + value + "}";
          doc += tail;
          Value parsed = J(doc);
          auto s = ScanTwinSections(doc, true, false);
          ASSERT_TRUE(s.has_value()) << doc;
          ASSERT_TRUE(s->tag_members.has_value()) << doc;
          ASSERT_EQ(s->tag_members->size(), 1u) << doc;
          EXPECT_EQ(Span(doc, (*s->tag_members)[0].value), value) << doc;
          EXPECT_EQ(Span(doc, s->tags), ToJson(*parsed.Find("tags"))) << doc;
          std::string keyed = "{\"" + body + "\":1}";
          EXPECT_EQ(ScanObjectMembers(keyed, JsonSpan{0, keyed.size()}).has_value(), escape.empty())
              << keyed;
        }
      }
    }
  }
}

TEST(TwinSpliceTest, ObjectMembersRefusesWhatItCannotVouchFor) {
  for (std::string bad : {
           "[1]", "{", R"({"a":1,})", R"({"a":1} x)",
           R"({"\u0061":1})",   // an escaped key
           R"({"a":1,"a":2})",  // a repeated key
       }) {
    EXPECT_FALSE(ScanObjectMembers(bad, JsonSpan{0, bad.size()}).has_value()) << bad;
  }
  // A repeated key among many members (the sorted check).
  std::string many = "{";
  for (int i = 0; i < 40; ++i) many += fmt::format("\"k{}\":{},", i, i);
  std::string unique = many;
  unique.back() = '}';
  EXPECT_TRUE(ScanObjectMembers(unique, JsonSpan{0, unique.size()}).has_value());
  many += "\"k17\":0}";
  EXPECT_FALSE(ScanObjectMembers(many, JsonSpan{0, many.size()}).has_value());
}

TEST(TwinSpliceTest, SpliceReplacesSpansInAnyOrder) {
  std::string text = "0123456789";
  EXPECT_EQ(SpliceJson(text, {{JsonSpan{7, 9}, "X"}, {JsonSpan{1, 2}, "abc"}}), "0abc23456X9");
  EXPECT_EQ(SpliceJson(text, {}), text);
  EXPECT_EQ(SpliceJson(text, {{JsonSpan{0, 10}, ""}}), "");
}

// The storage a splice is given (SpliceInTable takes it before the patch): its old content is
// dropped; it is written in place when large enough, and replaced when not.
TEST(TwinSpliceTest, SpliceWritesIntoTheStorageItIsGiven) {
  std::string text = std::string(100, 'a') + "0123456789";
  std::string storage = "old content";
  storage.reserve(200);
  const char* at = storage.data();
  std::string out = SpliceJson(text, {{JsonSpan{100, 101}, "xyz"}}, &storage);
  EXPECT_EQ(out, std::string(100, 'a') + "xyz123456789");
  EXPECT_EQ(out.data(), at);  // written where the storage was
  std::string small = "tiny";
  small.shrink_to_fit();
  out = SpliceJson(text, {{JsonSpan{0, 100}, ""}, {JsonSpan{109, 110}, "!!"}}, &small);
  EXPECT_EQ(out, "012345678!!");
  std::string too_small;
  too_small.reserve(20);
  out = SpliceJson(text, {{JsonSpan{105, 106}, "five"}}, &too_small);
  EXPECT_EQ(out, std::string(100, 'a') + "01234five6789");
}

// ---- the fleet, fast path against the whole-document path ---------------------------------

constexpr const char* kFleet = R"(
{"deviceId":"a","etag":"AAAAAAAAAAI=","version":2,"status":"enabled","tags":{"floor":3,"loc":{"b":"43"}},"properties":{"desired":{"t":1,"$metadata":{"$lastUpdated":"2024-01-01T00:00:00.0000000Z","$lastUpdatedVersion":1,"t":{"$lastUpdated":"2024-01-01T00:00:00.0000000Z","$lastUpdatedVersion":1}},"$version":1},"reported":{"r":[1,2],"$version":4}},"capabilities":{"iotEdge":false}}
{"deviceId":"b","etag":"AAAAAAAAAAE=","version":1,"tags":{"x":"é \"q\""},"properties":{"reported":{}}}
{"deviceId":"c","tags":{"x":1}}
{"deviceId":"d","etag":"AAAAAAAAAAE=","version":1,"tags":[1,2],"properties":{"desired":{}}}
{"deviceId":"e","etag":"AAAAAAAAAAE=","version":1,"tags":{},"properties":{"desired":{"$version":1}}}
{"deviceId":"a","moduleId":"m1","etag":"AAAAAAAAAAE=","version":1,"tags":{"k":"v"},"properties":{"desired":{"$version":1},"reported":{}}}
{"deviceId":"a","moduleId":"m2","etag":"AAAAAAAAAAE=","version":1,"tags":{},"properties":{"desired":{"$version":1}}}
)";

Mutation PatchOf(std::string device, std::string module, std::string_view patch,
                 std::string if_match = "*") {
  Mutation m;
  m.kind = Mutation::Kind::kPatch;
  m.device_id = std::move(device);
  m.module_id = std::move(module);
  m.patch = J(patch);
  m.if_match = std::move(if_match);
  return m;
}

Mutation UpsertOf(std::string_view doc) {
  Mutation m;
  m.kind = Mutation::Kind::kUpsert;
  m.doc = J(doc);
  return m;
}

Mutation DeleteOf(std::string device) {
  Mutation m;
  m.kind = Mutation::Kind::kDelete;
  m.device_id = std::move(device);
  return m;
}

// Every document of a table, in row order ("" for deleted rows).
std::vector<std::string> Docs(const Table& t) {
  std::vector<std::string> out;
  for (uint32_t row = 0; row < t.row_count(); ++row) out.emplace_back(t.doc_json(row));
  return out;
}

std::vector<Value> LiveDocs(const Table& t) {
  std::vector<Value> out;
  for (uint32_t row : t.order()) out.push_back(t.Document(row));
  return out;
}

// Applies each batch to a fleet with the fast path and one without; both must give the same
// outcome (version or the same error message), the same documents and columns that agree with
// them. Returns how many patches took the splice path. `prepared_taken`, if given, receives how
// many splices the pipelined fleet took from its PreparedBatch.
uint64_t ExpectSameBoth(const std::vector<std::vector<Mutation>>& batches,
                        std::string_view fleet = kFleet, uint64_t* prepared_taken = nullptr) {
  // `par` splices ahead on two threads (ApplyOptions), even for batches of one. `piped` is given
  // each batch's splices prepared one batch early, against the version before the previous
  // batch, the way a twin job's pipeline prepares them (Fleet::StartPrepare).
  Fleet fast, slow, par, piped;
  EXPECT_TRUE(fast.LoadTwinsText(fleet, "fleet").ok());
  EXPECT_TRUE(slow.LoadTwinsText(fleet, "fleet").ok());
  EXPECT_TRUE(par.LoadTwinsText(fleet, "fleet").ok());
  EXPECT_TRUE(piped.LoadTwinsText(fleet, "fleet").ok());
  ApplyOptions two;
  two.threads = 2;
  two.parallel_min_batch = 1;
  slow.set_splice_patches(false);
  auto now_of = [](size_t b) {
    return FormatTimestamp(17'000'000'000'000'000 + static_cast<int64_t>(b));
  };
  auto prepare = [&](size_t b) {
    PreparedBatch p = piped.StartPrepare(batches[b].size(), now_of(b));
    piped.PrepareRange(batches[b], 0, batches[b].size() / 2, &p);  // in two parts
    piped.PrepareRange(batches[b], batches[b].size() / 2, batches[b].size(), &p);
    return p;
  };
  PreparedBatch next = batches.empty() ? PreparedBatch() : prepare(0);
  for (size_t b = 0; b < batches.size(); ++b) {
    SCOPED_TRACE(fmt::format("batch {}", b));
    std::string now = now_of(b);
    Expected<uint64_t> f = fast.Apply(batches[b], now);
    Expected<uint64_t> s = slow.Apply(batches[b], now);
    Expected<uint64_t> p = par.Apply(batches[b], now, two);
    PreparedBatch current = std::move(next);
    if (b + 1 < batches.size()) next = prepare(b + 1);
    Expected<uint64_t> q = piped.Apply(batches[b], now, {}, &current);
    EXPECT_EQ(f.ok(), s.ok());
    EXPECT_EQ(f.ok(), p.ok());
    EXPECT_EQ(f.ok(), q.ok());
    if (!f.ok() && !p.ok()) {
      EXPECT_EQ(f.error().message, p.error().message);
    }
    if (!f.ok() && !q.ok()) {
      EXPECT_EQ(f.error().message, q.error().message);
    }
    if (f.ok() && s.ok()) {
      EXPECT_EQ(*f, *s);
    } else if (!f.ok() && !s.ok()) {
      EXPECT_EQ(f.error().message, s.error().message);
    }
    for (bool modules : {false, true}) {
      const Table& ft = modules ? fast.snapshot().modules() : fast.snapshot().devices();
      const Table& st = modules ? slow.snapshot().modules() : slow.snapshot().devices();
      const Table& pt = modules ? par.snapshot().modules() : par.snapshot().devices();
      const Table& qt = modules ? piped.snapshot().modules() : piped.snapshot().devices();
      EXPECT_EQ(Docs(ft), Docs(st));
      EXPECT_EQ(Docs(ft), Docs(pt));
      EXPECT_EQ(Docs(ft), Docs(qt));
      EXPECT_TRUE(CheckTableAgainstDocuments(ft, LiveDocs(ft)));
      EXPECT_TRUE(CheckTableAgainstDocuments(st, LiveDocs(st)));
      EXPECT_TRUE(CheckTableAgainstDocuments(pt, LiveDocs(pt)));
      EXPECT_TRUE(CheckTableAgainstDocuments(qt, LiveDocs(qt)));
    }
  }
  EXPECT_EQ(slow.spliced_patches(), 0u);
  EXPECT_EQ(par.spliced_patches(), fast.spliced_patches());
  EXPECT_EQ(piped.spliced_patches(), fast.spliced_patches());
  if (prepared_taken != nullptr) *prepared_taken = piped.prepared_patches_taken();
  // The same reads of the same versions (each table's columns checked after every batch, which
  // merges their pending changes) give byte-identical files. A fleet read at other moments may
  // differ: whether a column keeps postings depends on when its merges ran.
  EXPECT_TRUE(fast.Serialize() == slow.Serialize());
  EXPECT_TRUE(par.Serialize() == fast.Serialize());
  EXPECT_TRUE(piped.Serialize() == fast.Serialize());
  return fast.spliced_patches();
}

TEST(TwinSpliceFleetTest, TagsAndDesiredPatches) {
  uint64_t spliced = ExpectSameBoth({
      {PatchOf("a", "", R"({"tags":{"floor":4,"loc":{"b":null,"c":[1]},"new":"n"}})")},
      {PatchOf("a", "", R"({"properties":{"desired":{"t":null,"u":{"v":1}}}})")},
      {PatchOf("a", "", R"({"tags":{"floor":4},"properties":{"desired":{"u":{"v":2}}}})")},
      {PatchOf("b", "", R"({"tags":{"x":"y"}})")},
      {PatchOf("a", "m1", R"({"tags":{"k":null},"properties":{"desired":{"p":true}}})")},
      {PatchOf("e", "", R"({"properties":{"desired":{"a":1},"reported":{}}})")},
  });
  EXPECT_EQ(spliced, 6u);
}

// Splices prepared one batch early (a twin job's pipeline) are taken only where the twin's
// stored document is still the one they were computed from: not for a twin the batch before
// patched, replaced (same row, new document), deleted or re-created (a new row), nor for one
// that did not exist yet; those are computed again, errors included.
TEST(TwinSpliceFleetTest, PreparedSplicesOfTwinsChangedMeanwhile) {
  uint64_t taken = 0;
  ExpectSameBoth(
      {
          {PatchOf("b", "", R"({"tags":{"x":1}})")},  // prepared against this version: taken
          {DeleteOf("b"), UpsertOf(R"({"deviceId":"b","etag":"AAAAAAAAAAE=","version":1,)"
                                   R"("tags":{"x":0}})")},  // the same row, a new document
          {PatchOf("b", "", R"({"tags":{"y":2}})")},        // stale
          {PatchOf("a", "", R"({"tags":{"n":1}})")},        // taken
          {PatchOf("a", "", R"({"tags":{"n":2}})")},        // stale: the batch before patched a
          {DeleteOf("e")},
          {UpsertOf(R"({"deviceId":"e","etag":"AAAAAAAAAAE=","version":1,"tags":{}})")},
          {PatchOf("e", "", R"({"tags":{"q":1}})")},    // prepared while e had no row
          {PatchOf("a", "m2", R"({"tags":{"k":1}})")},  // taken
          {DeleteOf("a")},
          {PatchOf("a", "", R"({"tags":{"n":3}})")},  // prepared while a was live: no twin now
          // The batch before failed, so this was prepared against the current version: its
          // answer (no such twin) is taken.
          {PatchOf("zz", "", R"({"tags":{"x":1}})")},
      },
      kFleet, &taken);
  EXPECT_EQ(taken, 4u);  // b, a, a/m2 and zz
}

// A patch's row hint (the row a twin job resolved its target in) is taken only where that row
// is live and holds the twin; any other hint is ignored and the twin is looked up by its ids:
// another twin's row, a module's row given for another module (each table numbers its own
// rows), a row past the end, the row of a deleted twin, the old row of a re-created one, and a
// hint for a twin that does not exist.
TEST(TwinSpliceFleetTest, RowHintsAreCheckedBeforeTheyAreTaken) {
  auto hinted = [](Mutation m, uint32_t row) {
    m.row_hint = row;
    return m;
  };
  uint64_t spliced = ExpectSameBoth({
      {hinted(PatchOf("a", "", R"({"tags":{"h":1}})"), 0)},         // a's own row
      {hinted(PatchOf("b", "", R"({"tags":{"h":2}})"), 0)},         // a's row
      {hinted(PatchOf("a", "m2", R"({"tags":{"h":3}})"), 0)},       // a/m1's row
      {hinted(PatchOf("a", "m1", R"({"tags":{"h":4}})"), 1)},       // a/m2's row
      {hinted(PatchOf("e", "", R"({"tags":{"h":5}})"), 1u << 20)},  // past the end
      {DeleteOf("c")},
      {hinted(PatchOf("c", "", R"({"tags":{"h":6}})"), 2)},  // c's row, deleted: no twin
      {UpsertOf(R"({"deviceId":"c","etag":"AAAAAAAAAAE=","version":1,"tags":{}})")},
      {hinted(PatchOf("c", "", R"({"tags":{"h":7}})"), 2)},   // c's old row
      {hinted(PatchOf("zz", "", R"({"tags":{"h":8}})"), 0)},  // no twin zz
      {hinted(PatchOf("b", "", R"({"tags":{"h":9}})"), 1),
       hinted(PatchOf("b", "", R"({"tags":{"h":10}})"), 1)},
  });
  EXPECT_EQ(spliced, 7u);  // all but the failing patches and b's second in one batch
}

// Later mutations of a batch see the twins its splices changed (a batch keeps those by row):
// a twin patched twice or three times, its module patched and then dropped with the device,
// a re-created device patched again, a spliced twin replaced by an upsert and patched, and a
// patch that changes nothing between two that do.
TEST(TwinSpliceFleetTest, LaterMutationsOfABatchSeeItsSplices) {
  uint64_t spliced = ExpectSameBoth({
      {PatchOf("a", "", R"({"tags":{"s":1}})"), PatchOf("a", "", R"({"tags":{"s":2,"t":1}})"),
       PatchOf("a", "", R"({"tags":{"t":null}})")},
      {PatchOf("a", "m1", R"({"tags":{"s":1}})"), PatchOf("b", "", R"({"tags":{"s":1}})"),
       PatchOf("a", "m1", R"({"tags":{"s":2}})"), DeleteOf("a"),
       UpsertOf(R"({"deviceId":"a","etag":"AAAAAAAAAAE=","version":1,"tags":{"n":0}})"),
       PatchOf("a", "", R"({"tags":{"n":1}})"), PatchOf("b", "", R"({"tags":{"s":1}})"),
       PatchOf("b", "", R"({"tags":{"s":3}})")},
      {PatchOf("e", "", R"({"tags":{"u":1}})"),
       UpsertOf(R"({"deviceId":"e","etag":"AAAAAAAAAAc=","version":7,"tags":{"w":1}})"),
       PatchOf("e", "", R"({"tags":{"u":2}})"),
       PatchOf("e", "", R"({"properties":{"desired":{"k":1}}})")},
      // a/m2 went with a: the batch is refused whole, b's splice included.
      {PatchOf("b", "", R"({"tags":{"z":1}})"), PatchOf("a", "m2", R"({"tags":{"k":1}})")},
  });
  // The first patch of each twin in a batch: a; a/m1 and b; e; b (refused with its batch).
  EXPECT_EQ(spliced, 5u);
}

// The fast path parses and prints only the tag members a patch names; the rest of the tags is
// copied as text. Deleting the first, a middle, the last and every member, adding members after
// deletions, merging objects into scalars and objects, the size rule on large tags (the exact
// count beyond the 8-bytes-per-byte bound), values equal but spelled differently, and tags with
// many members.
TEST(TwinSpliceFleetTest, OnlyTheNamedTagMembersAreRewritten) {
  std::string big = R"({"deviceId":"big","etag":"AAAAAAAAAAE=","version":1,"tags":{)";
  for (int i = 0; i < 40; ++i) big += fmt::format(R"("k{}":"{}",)", i, std::string(150, 'a'));
  big += R"("n":-0,"last":1}})";
  std::string fleet = std::string(kFleet) + big + "\n";
  uint64_t spliced = ExpectSameBoth(
      {
          {PatchOf("a", "", R"({"tags":{"floor":null}})")},                  // first member
          {PatchOf("a", "", R"({"tags":{"x":1,"y":2,"z":3}})")},             // appended
          {PatchOf("a", "", R"({"tags":{"y":null,"w":{"q":null}}})")},       // middle; new {}
          {PatchOf("a", "", R"({"tags":{"z":null}})")},                      // last
          {PatchOf("a", "", R"({"tags":{"loc":null,"x":null,"w":null}})")},  // every one
          {PatchOf("a", "", R"({"tags":{"again":[1,{"a":null}]}})")},        // into {}
          {PatchOf("a", "", R"({"tags":{"again":{"b":{"c":1}}}})")},         // object onto an array
          {PatchOf("a", "", R"({"tags":{"again":{"b":{"d":2}},"e":"é\u0001"}})")},  // merge
          {PatchOf("big", "", R"({"tags":{"k3":null,"k39":"b","new":1}})")},
          {PatchOf("big", "", R"({"tags":{"n":0}})")},  // -0 == 0: no change
          {PatchOf("big", "", R"({"tags":{"n":0,"last":2}})")},
          // Over the 8 KB limit only once the members the patch does not name are counted.
          {PatchOf("big", "", fmt::format(R"({{"tags":{{"k5":"{}"}}}})", std::string(2500, 'c')))},
          {PatchOf("big", "", fmt::format(R"({{"tags":{{"k5":"{}"}}}})", std::string(1500, 'c')))},
      },
      fleet);
  EXPECT_GE(spliced, 12u);  // every patch but the one over the limit
}

// The same for properties.desired, whose "$metadata" the fast path reads member by member when
// it starts with the two stamps (as the service writes it), and whose "$version" it needs: named
// members and their entries rewritten, new members before the trailing run of "$metadata" and
// "$version" of the whole section, stale entries kept, nested entries, deletions, a section
// whose reserved members are not trailing, sections the member path declines (stamps not first,
// no "$metadata", an escaped key) and the size rule beyond the bound.
TEST(TwinSpliceFleetTest, OnlyTheNamedDesiredMembersAreRewritten) {
  const std::string stamp =
      R"("$lastUpdated":"2024-01-01T00:00:00.0000000Z","$lastUpdatedVersion":3)";
  std::string big_desired;
  for (int i = 0; i < 30; ++i)
    big_desired += fmt::format(R"("b{}":"{}",)", i, std::string(1000, 'a'));
  std::string fleet =
      std::string(kFleet) +
      fmt::format(
          R"({{"deviceId":"p","etag":"AAAAAAAAAAM=","version":3,"properties":{{"desired":{{"a":1,"o":{{"x":1,"y":[1,2]}},"$metadata":{{{0},"a":{{{0}}},"o":{{{0},"x":{{{0}}},"y":{{{0}}}}},"stale":{{{0}}}}},"z":"mid","$version":3}}}}}}
{{"deviceId":"q","etag":"AAAAAAAAAAM=","version":3,"properties":{{"desired":{{"a":1,"$metadata":{{"a":{{{0}}},{0}}},"$version":3}}}}}}
{{"deviceId":"r","etag":"AAAAAAAAAAM=","version":3,"properties":{{"desired":{{"a\\u0041":1,"$metadata":{{{0}}},"$version":3}}}}}}
{{"deviceId":"s","etag":"AAAAAAAAAAM=","version":3,"properties":{{"desired":{{{1}"$metadata":{{{0}}},"$version":3}}}}}}
)",
          stamp, big_desired);
  uint64_t spliced = ExpectSameBoth(
      {
          {PatchOf("p", "", R"({"properties":{"desired":{"a":2}}})")},
          {PatchOf("p", "", R"({"properties":{"desired":{"new":{"n":{"m":1}},"z":"end"}}})")},
          {PatchOf("p", "", R"({"properties":{"desired":{"o":{"x":null,"w":true}}}})")},
          {PatchOf("p", "", R"({"properties":{"desired":{"o":null,"stale":null}}})")},
          {PatchOf("p", "", R"({"properties":{"desired":{"a":2}}})")},  // no change
          {PatchOf("p", "", R"({"tags":{"t":1},"properties":{"desired":{"a":3},"reported":{}}})")},
          {PatchOf("p", "", R"({"properties":{"reported":{}},"tags":{"t":2}})")},
          {PatchOf("q", "", R"({"properties":{"desired":{"a":2,"b":1}}})")},  // stamps not first
          {PatchOf("r", "", R"({"properties":{"desired":{"c":2}}})")},        // escaped key
          {PatchOf("e", "", R"({"properties":{"desired":{"c":2}}})")},        // no $metadata
          {PatchOf("s", "", R"({"properties":{"desired":{"b3":null,"c":1}}})")},
          // Over 32 KB only with the members the patch does not name.
          {PatchOf("s", "",
                   fmt::format(R"({{"properties":{{"desired":{{"b4":"{}"}}}}}})",
                               std::string(4000, 'c')))},
          {PatchOf("s", "",
                   fmt::format(R"({{"properties":{{"desired":{{"b4":"{}"}}}}}})",
                               std::string(1500, 'c')))},
      },
      fleet);
  EXPECT_GE(spliced, 12u);
}

TEST(TwinSpliceFleetTest, NoOpPatchesChangeNothing) {
  uint64_t spliced = ExpectSameBoth({
      {PatchOf("a", "", R"({"tags":{"floor":3}})")},
      {PatchOf("a", "", R"({"tags":{"gone":null},"properties":{"desired":{"t":1}}})")},
  });
  EXPECT_EQ(spliced, 2u);
}

TEST(TwinSpliceFleetTest, SectionsTheFastPathCannotSplice) {
  // c has no etag or version; d's tags are an array; b has no desired (the patch needs it).
  uint64_t spliced = ExpectSameBoth({
      {PatchOf("c", "", R"({"tags":{"x":2}})")},
      {PatchOf("d", "", R"({"tags":{"x":2}})")},
      {PatchOf("b", "", R"({"properties":{"desired":{"x":2}}})")},
  });
  EXPECT_EQ(spliced, 0u);
}

TEST(TwinSpliceFleetTest, ErrorsAreTheWholeDocumentPathsErrors) {
  uint64_t spliced = ExpectSameBoth({
      {PatchOf("a", "", R"({"tags":{"a.b":1}})")},
      {PatchOf("a", "", R"({"tags":{"x":1}})", "\"AAAAAAAAAAE=\"")},
      {PatchOf("a", "", R"({"tags":{"x":1}})", "\"AAAAAAAAAAI=\"")},  // matches
      {PatchOf("a", "", R"({"deviceId":"other","tags":{"x":1}})")},
      {PatchOf("a", "", R"({"tags":5})")},
      {PatchOf("a", "", R"([1])")},
      {PatchOf("zz", "", R"({"tags":{"x":1}})")},
      {PatchOf("b", "", R"({"tags":{"ok":1}})"), PatchOf("b", "", R"({"tags":{"$no":1}})")},
  });
  EXPECT_GE(spliced, 2u);
}

TEST(TwinSpliceFleetTest, OneTwinTouchedSeveralTimesInABatch) {
  uint64_t spliced = ExpectSameBoth({
      // patched twice: the second patch sees the first
      {PatchOf("a", "", R"({"tags":{"n":1}})"), PatchOf("a", "", R"({"tags":{"n":2,"m":1}})")},
      // patched, then deleted with its modules (one of them patched first)
      {PatchOf("a", "m1", R"({"tags":{"k":"w"}})"), PatchOf("a", "", R"({"tags":{"n":3}})"),
       DeleteOf("a")},
      // patched, then the batch fails: nothing is applied
      {PatchOf("b", "", R"({"tags":{"x":"z"}})"), DeleteOf("nobody")},
      {PatchOf("e", "", R"({"tags":{"q":1}})"), PatchOf("e", "", R"({"tags":{"q":null}})")},
  });
  EXPECT_GE(spliced, 4u);
}

// A batch of patches by id looks its twins up a few mutations ahead of their turn (the id hash,
// the row, the document: Fleet::Apply). What the batch does in between must win over what was
// looked up: twins deleted and re-created, added, and dropped with their device after their
// lookup, beside patches of device and module twins that splice; and a failing batch keeps its
// "mutation N" message.
TEST(TwinSpliceFleetTest, ABatchLooksItsTwinsUpAheadOfTheirTurn) {
  FleetSpec spec;
  spec.devices = 60;
  std::string text = GenerateFleetNdjson(spec);
  std::vector<std::pair<std::string, std::string>> twins;  // devices first, then modules
  std::vector<std::pair<std::string, std::string>> modules;
  for (const Value& v : GenerateFleetValues(spec)) {
    const Value* module = v.Find("moduleId");
    (module ? modules : twins)
        .emplace_back(v.Find("deviceId")->as_string(), module ? module->as_string() : "");
  }
  ASSERT_GE(modules.size(), 4u);
  twins.insert(twins.end(), modules.begin(), modules.end());
  auto patch = [&](size_t k, int i) {
    return PatchOf(twins[k].first, twins[k].second, fmt::format(R"({{"tags":{{"ahead":{}}}}})", i));
  };
  auto upsert = [](const std::string& device) {
    return UpsertOf(fmt::format(R"({{"deviceId":"{}","etag":"AAAAAAAAAAE=","version":1,)"
                                R"("tags":{{"re":1}}}})",
                                device));
  };
  // Each twin once, with changes to twins a few places before their patch.
  std::vector<Mutation> mixed;
  for (size_t k = 0; k < twins.size(); ++k) {
    if (k == 20 || k == 40) {  // twins 22 and 42 deleted and re-created before their patch
      mixed.push_back(DeleteOf(twins[k + 2].first));
      mixed.push_back(upsert(twins[k + 2].first));
    }
    if (k == 30) mixed.push_back(upsert("new-twin"));
    if (k == 33) mixed.push_back(PatchOf("new-twin", "", R"({"tags":{"ahead":-1}})"));
    mixed.push_back(patch(k, static_cast<int>(k)));
  }
  std::vector<Mutation> failing;
  for (size_t k = 0; k < 20; ++k) failing.push_back(patch(k, 100));
  failing[17] = PatchOf("zz", "", R"({"tags":{"ahead":117}})");  // no such twin
  // A device deleted before a patch of its module, which was looked up while it was live.
  const std::string& parent = modules.front().first;
  std::vector<Mutation> modules_gone;
  for (size_t k = 0; k < 16; ++k) {
    if (twins[k].first != parent) modules_gone.push_back(patch(k, 200));
  }
  modules_gone.resize(12);
  modules_gone[2] = DeleteOf(parent);
  modules_gone[9] = PatchOf(parent, modules.front().second, R"({"tags":{"ahead":209}})");
  uint64_t spliced = ExpectSameBoth({mixed, failing, modules_gone}, text);
  EXPECT_GE(spliced, twins.size() / 2);  // (some generated twins lack a section it needs)

  Fleet fleet;
  ASSERT_TRUE(fleet.LoadTwinsText(text, "fleet").ok());
  Expected<uint64_t> r = fleet.Apply(failing, FormatTimestamp(17'000'000'000'000'000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "mutation 18: no twin 'zz'");
  r = fleet.Apply(modules_gone, FormatTimestamp(17'000'000'000'000'000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            fmt::format("mutation 10: no twin '{}/{}'", parent, modules.front().second));
}

// Batches large enough that the write merges the columns' pending changes itself (over
// MaxPendingRows): with two threads (`par` in ExpectSameBoth) the columns are merged side by
// side, and the outcome must not differ from one thread's.
TEST(TwinSpliceFleetTest, LargeBatchesMergeColumnsOnSeveralThreadsAlike) {
  FleetSpec spec;
  spec.devices = 1100;  // over MaxPendingRows (1024) patched rows per column
  std::string text = GenerateFleetNdjson(spec);
  std::vector<std::pair<std::string, std::string>> twins;
  for (const Value& v : GenerateFleetValues(spec)) {
    const Value* module = v.Find("moduleId");
    twins.emplace_back(v.Find("deviceId")->as_string(), module ? module->as_string() : "");
  }
  std::vector<std::vector<Mutation>> batches(3);
  for (size_t i = 0; i < twins.size(); ++i) {
    const auto& [device, module] = twins[i];
    batches[0].push_back(
        PatchOf(device, module, fmt::format(R"({{"tags":{{"bulk":"v{}"}}}})", i % 7)));
    batches[1].push_back(PatchOf(device, module, R"({"properties":{"desired":{"bulk":true}}})"));
    if (i % 3 == 0) batches[2].push_back(PatchOf(device, module, R"({"tags":{"bulk":null}})"));
  }
  ExpectSameBoth(batches, text);
  // The first batch alone leaves no pending changes in the columns it touched: the write
  // merged them (so the two-thread merge above did run).
  Fleet fleet;
  ASSERT_TRUE(fleet.LoadTwinsText(text, "fleet").ok());
  ApplyOptions two;
  two.threads = 2;
  ASSERT_TRUE(fleet.Apply(batches[0], FormatTimestamp(17'000'000'000'000'000), two).ok());
  const Table& devices = fleet.snapshot().devices();
  auto step = [](const char* name) { return Step{false, name, 0}; };
  for (const ColumnPath& path :
       {ColumnPath{step("etag")}, ColumnPath{step("version")}, {step("tags"), step("bulk")}}) {
    const Column* c = devices.FindExact(path);
    ASSERT_NE(c, nullptr) << PathDisplay(path);
    EXPECT_EQ(c->pending_rows(), 0u) << PathDisplay(path);
  }
}

}  // namespace
}  // namespace twinq::index
