#include "index/table.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/common/json_reader.h"
#include "index/fleet.h"
#include "index/fleet_gen.h"
#include "index/hash.h"

namespace twinq::index {
namespace {

TwinSet Twins(std::string_view text) {
  auto r = ReadTwins(text, "test");
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? std::move(r.value()) : TwinSet();
}

ColumnPath P(std::initializer_list<std::string> names) {
  ColumnPath p;
  for (const auto& n : names) p.push_back(Step{false, n, 0});
  return p;
}

TEST(TableTest, BuildsColumnsPerPath) {
  TwinSet t = Twins(R"({"deviceId":"b","tags":{"x":1,"s":"q","l":[1,"a"]}}
{"deviceId":"a","tags":{"x":"1","n":null,"t":true}})");
  auto table = Table::Build(t.devices, false);
  ASSERT_EQ(table->row_count(), 2u);
  EXPECT_EQ(table->device_id(0), "a");
  const Column* x = table->FindExact(P({"tags", "x"}));
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->rows(Kind::kString).ToVector(), std::vector<uint32_t>({0}));
  EXPECT_EQ(x->rows(Kind::kNumber).ToVector(), std::vector<uint32_t>({1}));
  EXPECT_EQ(ToJson(x->ValueAt(0)), "\"1\"");
  EXPECT_EQ(ToJson(x->ValueAt(1)), "1");
  ColumnPath l1 = P({"tags", "l"});
  l1.push_back(Step{true, "", 1});
  const Column* el = table->FindExact(l1);
  ASSERT_NE(el, nullptr);
  EXPECT_EQ(ToJson(el->ValueAt(1)), "\"a\"");
  EXPECT_EQ(table->FindExact(P({"tags", "l"}))->array_lengths(), std::vector<uint32_t>({2}));
  EXPECT_EQ(table->doc_json(1), R"({"deviceId":"b","tags":{"x":1,"s":"q","l":[1,"a"]}})");
}

// The ingest reads twins as tokens (json_reader.h) and builds no Value: its tables are the ones
// the same twins build as Values (the oracle), row for row and column for column, for a generated
// fleet (with module twins) and twins with every kind of value, nested arrays, escapes, numbers
// spelled otherwise, empty names and members in unusual orders.
TEST(TableTest, TwinsReadAsTokensBuildTheTablesTheirValuesBuild) {
  FleetSpec spec;
  spec.devices = 300;
  std::string text = GenerateFleetNdjson(spec);
  text += R"({"tags":{"a":[1,[2,{"b":null}],"x"],"":{"":true}},"deviceId":"odd"})"
          "\n";
  text += R"({"deviceId":"nums","v":[0,-0,1.50,1e2,-2.5e-3,1e300,9007199254740992]})"
          "\n";
  text += R"([{"deviceId":"esc","s":"\u00e9\"\\\n\u0001\/"},{"deviceId":"esc","moduleId":"m"}])"
          "\n";
  text += R"({"deviceId":"kinds","tags":{"k":1}} {"deviceId":"kinds2","tags":{"k":"1"}})"
          "\n";
  TableStream value_devices(false), value_modules(true);
  Expected<size_t> a = VisitTwins(text, "t", [&](Value twin, bool module) {
    (module ? value_modules : value_devices).Add(twin);
  });
  ASSERT_TRUE(a.ok()) << a.error().message;
  TableStream token_devices(false), token_modules(true);
  Expected<size_t> b =
      VisitTwins(text, "t", [&](const JsonToken* twin, bool module, std::string_view, bool) {
        (module ? token_modules : token_devices).Add(twin);
      });
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(*a, *b);
  std::shared_ptr<const Table> vd = value_devices.Finish(), vm = value_modules.Finish();
  std::shared_ptr<const Table> td = token_devices.Finish(), tm = token_modules.Finish();
  EXPECT_GT(vd->row_count(), 300u);
  EXPECT_GT(vm->row_count(), 0u);
  EXPECT_GT(vd->columns().size(), 50u);
  EXPECT_TRUE(TableContents(*td) == TableContents(*vd));
  EXPECT_TRUE(TableContents(*tm) == TableContents(*vm));
  // And so is a fleet loaded from the text (tokens) the one a TwinSet builds (Values).
  Fleet loaded;
  ASSERT_TRUE(loaded.LoadTwinsText(text, "t").ok());
  Snapshot s = loaded.snapshot();
  EXPECT_TRUE(TableContents(s.devices()) == TableContents(*vd));
  EXPECT_TRUE(TableContents(s.modules()) == TableContents(*vm));
}

TEST(TableTest, FoldedCatalogKeepsCaseVariants) {
  TwinSet t = Twins(R"({"deviceId":"a","tags":{"floor":1,"Floor":2}})");
  auto table = Table::Build(t.devices, false);
  const auto* ids = table->FindFolded(P({"TAGS", "FLOOR"}));
  ASSERT_NE(ids, nullptr);
  ASSERT_EQ(ids->size(), 2u);
  EXPECT_EQ(table->column((*ids)[0])->path()[1].name, "Floor");  // byte order of spelling
}

std::shared_ptr<const Column> NamedColumn(const std::string& name) {
  ColumnBuilder b(P({name}));
  b.AddNumber(0, 1);
  return std::move(b).Build();
}

// Columns are kept in groups: a copy shares every group, and a change copies only the group it
// writes (a shared group is never written in place).
TEST(ColumnListTest, CopiesShareGroupsAndCopyTheGroupTheyChange) {
  std::vector<ColumnList::Handle> handles;
  for (int i = 0; i < 20; ++i) handles.push_back(NamedColumn(fmt::format("c{}", i)));
  ColumnList a(handles);
  ASSERT_EQ(a.size(), 20u);
  size_t i = 0;
  for (const ColumnList::Handle& h : a) EXPECT_EQ(h, handles[i++]);
  EXPECT_EQ(i, 20u);

  ColumnList b = a;
  auto other = NamedColumn("other");
  b.Set(9, other);
  EXPECT_EQ(a[9], handles[9]);  // the original keeps its column
  EXPECT_EQ(b[9], other);
  EXPECT_EQ(b[8], handles[8]);
  EXPECT_NE(&a[9], &b[9]);  // group 1 was copied for b
  EXPECT_NE(&a[8], &b[8]);
  EXPECT_EQ(&a[0], &b[0]);  // groups 0 and 2 are still shared
  EXPECT_EQ(&a[16], &b[16]);

  // A group only b holds is written in place.
  const ColumnList::Handle* at = &b[10];
  b.Set(10, other);
  EXPECT_EQ(&b[10], at);
  EXPECT_EQ(a[10], handles[10]);

  // Appending to a shared last group copies it too.
  b.push_back(other);
  EXPECT_EQ(a.size(), 20u);
  EXPECT_EQ(b.size(), 21u);
  EXPECT_EQ(b[20], other);
  EXPECT_EQ(b[19], handles[19]);
  EXPECT_NE(&a[19], &b[19]);
  for (size_t k = 0; k < 20; ++k) EXPECT_EQ(a[k], handles[k]) << k;

  // Its memory counts its groups: 20 columns are 3 groups of 8; the 9th column of a list starts
  // its second group.
  ColumnList empty, c;
  EXPECT_GE(a.MemoryBytes(), empty.MemoryBytes() + 3 * 8 * sizeof(ColumnList::Handle));
  for (size_t k = 0; k < 8; ++k) c.push_back(handles[k]);
  const size_t one_group = c.MemoryBytes();
  c.push_back(other);
  EXPECT_GE(c.MemoryBytes(), one_group + 8 * sizeof(ColumnList::Handle));
}

// A patch's version shares its parent's column groups except the ones holding a column it
// changed, and its parent's documents except the one it changed.
TEST(TableTest, AVersionSharesWhatItDidNotChange) {
  std::string text;
  for (int d = 0; d < 40; ++d) {
    text += fmt::format(R"({{"deviceId":"d{:02}","tags":{{)", d);
    for (int k = 0; k < 30; ++k) text += fmt::format(R"({}"k{:02}":{})", k ? "," : "", k, d);
    text += "}}\n";
  }
  TwinSet t = Twins(text);
  auto table = Table::Build(t.devices, false);
  ASSERT_GE(table->columns().size(), 31u);
  Change c;
  c.kind = Change::Kind::kUpsert;
  c.device_id = "d07";
  std::string doc = R"({"deviceId":"d07","tags":{)";
  for (int k = 0; k < 30; ++k)
    doc += fmt::format(R"({}"k{:02}":{})", k ? "," : "", k, k == 5 ? 99 : 7);
  doc += "}}";
  c.doc = ParseJson(doc, "test").value();
  auto next = table->WithChanges({c});
  ASSERT_TRUE(next.ok());
  const Table& n = **next;
  const Column* k05 = table->FindExact(P({"tags", "k05"}));
  ASSERT_NE(k05, nullptr);
  size_t changed = table->columns().size();  // the id of k05 (none until found)
  for (size_t id = 0; id < table->columns().size(); ++id) {
    if (table->column(id) == k05) changed = id;
  }
  ASSERT_LT(changed, table->columns().size());
  EXPECT_NE(n.column(changed), k05);
  EXPECT_EQ(ToJson(n.column(changed)->ValueAt(*n.FindRow("d07"))), "99");
  EXPECT_EQ(ToJson(k05->ValueAt(*table->FindRow("d07"))), "7");
  for (size_t id = 0; id < table->columns().size(); ++id) {
    bool same_group = id / ColumnList::kGroup == changed / ColumnList::kGroup;
    EXPECT_EQ(&n.columns()[id] == &table->columns()[id], !same_group) << id;
    if (id != changed) {
      EXPECT_EQ(n.column(id), table->column(id)) << id;
    }
  }
  for (int d = 0; d < 40; ++d) {
    std::string id = fmt::format("d{:02}", d);
    uint32_t row = *table->FindRow(id);
    EXPECT_EQ(n.doc_json(row).data() == table->doc_json(row).data(), id != "d07") << id;
  }
}

// A change's row hint is only a hint: WithChanges checks it and looks the key up when the row
// does not hold it (another twin's row, a deleted row, a row past the end), so a wrong hint
// never writes to the wrong twin.
TEST(TableTest, WrongRowHintsAreIgnored) {
  TwinSet t = Twins(R"({"deviceId":"a","tags":{"x":1}}
{"deviceId":"b","tags":{"x":2}}
{"deviceId":"c","tags":{"x":3}})");
  auto table = Table::Build(t.devices, false);
  Change del;
  del.kind = Change::Kind::kDelete;
  del.device_id = "c";
  auto without_c = table->WithChanges({del});
  ASSERT_TRUE(without_c.ok());
  for (uint32_t hint : {0u, 2u, 7u, Change::kNoRow}) {  // a's row, c's deleted row, none
    SCOPED_TRACE(hint);
    Change c;
    c.kind = Change::Kind::kUpsert;
    c.device_id = "b";
    c.doc = ParseJson(R"({"deviceId":"b","tags":{"x":20}})", "test").value();
    c.row = hint;
    auto next = (*without_c)->WithChanges({c});
    ASSERT_TRUE(next.ok());
    const Table& n = **next;
    EXPECT_EQ(n.doc_json(*n.FindRow("a")), R"({"deviceId":"a","tags":{"x":1}})");
    EXPECT_EQ(n.doc_json(*n.FindRow("b")), R"({"deviceId":"b","tags":{"x":20}})");
    EXPECT_FALSE(n.FindRow("c").has_value());
    EXPECT_EQ(n.live_count(), 2u);
    EXPECT_EQ(ToJson(n.FindExact(P({"tags", "x"}))->ValueAt(*n.FindRow("b"))), "20");
    EXPECT_EQ(ToJson(n.FindExact(P({"tags", "x"}))->ValueAt(*n.FindRow("a"))), "1");
  }
  // A right hint gives the same table.
  Change c;
  c.kind = Change::Kind::kUpsert;
  c.device_id = "b";
  c.doc = ParseJson(R"({"deviceId":"b","tags":{"x":20}})", "test").value();
  c.row = *(*without_c)->FindRow("b");
  auto hinted = (*without_c)->WithChanges({c});
  ASSERT_TRUE(hinted.ok());
  EXPECT_EQ((*hinted)->doc_json(c.row), R"({"deviceId":"b","tags":{"x":20}})");
}

TEST(FleetTest, PatchUpsertDeleteAndSnapshots) {
  Fleet fleet(Twins(
      R"({"deviceId":"a","tags":{"x":1},"properties":{"desired":{"$version":1},"reported":{}},"version":1,"etag":"AAAAAAAAAAE="}
{"deviceId":"b","tags":{"x":2}}
{"deviceId":"b","moduleId":"m","tags":{}})"));
  Snapshot before = fleet.snapshot();
  auto v = fleet.Patch("a", "", *ParseJson(R"({"tags":{"x":5,"y":"new"}})", "p"), "*",
                       "2026-11-26T18:00:00.0000000Z");
  ASSERT_TRUE(v.ok()) << v.error().message;
  Snapshot after = fleet.snapshot();
  // The old snapshot is untouched.
  EXPECT_EQ(ToJson(before.devices().FindExact(P({"tags", "x"}))->ValueAt(0)), "1");
  EXPECT_EQ(ToJson(after.devices().FindExact(P({"tags", "x"}))->ValueAt(0)), "5");
  ASSERT_NE(after.devices().FindExact(P({"tags", "y"})), nullptr);
  EXPECT_EQ(before.devices().FindExact(P({"tags", "y"})), nullptr);
  // Upsert a new device, then delete b (and its module).
  ASSERT_TRUE(fleet.Upsert(*ParseJson(R"({"deviceId":"0","tags":{"x":0}})", "u")).ok());
  ASSERT_TRUE(fleet.Delete("b").ok());
  Snapshot last = fleet.snapshot();
  EXPECT_EQ(last.devices().live_count(), 2u);
  EXPECT_EQ(last.modules().live_count(), 0u);
  std::vector<std::string> ids;
  for (uint32_t row : last.devices().order()) ids.emplace_back(last.devices().device_id(row));
  EXPECT_EQ(ids, std::vector<std::string>({"0", "a"}));
  EXPECT_FALSE(fleet.Delete("zz").ok());
  // Save and load round-trip.
  std::string bytes = fleet.Serialize();
  auto loaded = Fleet::Deserialize(bytes, "mem");
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ((*loaded)->Serialize(), bytes);
  // Corruption is detected.
  std::string bad = bytes;
  bad[bad.size() / 2] ^= 0x40;
  auto refused = Fleet::Deserialize(bad, "mem");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("checksum"), std::string::npos);
  auto truncated = Fleet::Deserialize(std::string_view(bytes).substr(0, bytes.size() - 3), "mem");
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.error().message.find("truncated"), std::string::npos);
}

TEST(FleetTest, ChangesAddColumnsWithOddNamesExactly) {
  // New paths met by a change get their column path back from the catalog key: names holding
  // the key's own separators, digits, colons and brackets must survive.
  Fleet fleet(Twins(R"({"deviceId":"a","tags":{}})"));
  Expected<Value> doc = ParseJson(
      R"({"deviceId":"a","tags":{"a\u001f3:b":{"x\u001e1":[7,{"12:y":"z"}]},"":true,"日本":1}})",
      "doc");
  ASSERT_TRUE(doc.ok());
  ASSERT_TRUE(fleet.Upsert(*doc).ok());
  const Table& t = fleet.snapshot().devices();
  ColumnPath p = P({"tags",
                    "a\x1f"
                    "3:b",
                    "x\x1e"
                    "1"});
  p.push_back(Step{true, "", 1});
  p.push_back(Step{false, "12:y", 0});
  const Column* c = t.FindExact(p);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->path(), p);
  EXPECT_EQ(ToJson(c->ValueAt(0)), "\"z\"");
  ASSERT_NE(t.FindExact(P({"tags", ""})), nullptr);
  EXPECT_EQ(ToJson(t.FindExact(P({"tags", "日本"}))->ValueAt(0)), "1");
  // The same table, built from scratch, has the same columns.
  auto rebuilt = Table::Build({t.Document(0)}, false);
  EXPECT_EQ(rebuilt->columns().size(), t.columns().size());
  for (const auto& col : rebuilt->columns()) {
    const Column* same = t.FindExact(col->path());
    ASSERT_NE(same, nullptr) << PathDisplay(col->path());
    EXPECT_EQ(ToJson(same->ValueAt(0)), ToJson(col->ValueAt(0))) << PathDisplay(col->path());
  }
}

TEST(FleetTest, DeferredColumnsMergeOnFirstRead) {
  Fleet fleet(Twins(R"({"deviceId":"a","tags":{"x":1}}
{"deviceId":"b","tags":{"x":2}})"));
  Snapshot s0 = fleet.snapshot();
  for (int i = 0; i < 5; ++i) {
    Expected<Value> patch = ParseJson(fmt::format(R"({{"tags":{{"x":{}}}}})", 10 + i), "p");
    ASSERT_TRUE(fleet.Patch(i % 2 ? "b" : "a", "", *patch, "*", "2026-01-01T00:00:00Z").ok());
  }
  const Table& t = fleet.snapshot().devices();
  const Column* x = t.FindExact(P({"tags", "x"}));
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->pending_rows(), 5u);  // one changed row per version, none read yet
  EXPECT_EQ(x->numbers(), std::vector<double>({14, 13}));
  EXPECT_EQ(x->pending_rows(), 0u);
  // Only the values some row holds: 1 and 2 went with the merge; 10..12 were never merged.
  EXPECT_EQ(x->distinct_numbers(), std::vector<double>({13, 14}));
  EXPECT_EQ(x->number_postings()[0].ToVector(), std::vector<uint32_t>({1}));
  EXPECT_EQ(x->number_postings()[1].ToVector(), std::vector<uint32_t>({0}));
  // The first version never changed.
  EXPECT_EQ(s0.devices().FindExact(P({"tags", "x"}))->numbers(), std::vector<double>({1, 2}));
}

// A chain of deferred versions can be as long as MaxPendingRows (31,250 versions of a column of
// a million rows, each changing one row). Dropping a chain that was never merged must not
// recurse once per version: it runs here on a thread with a 256 KiB stack.
// A column of numbers keeps postings when it has at most a quarter of its rows (plus 16)
// distinct numbers: the distinct numbers sorted, each with its rows; -0 and 0 are one number.
TEST(ColumnTest, NumberPostingsWhenFewDistinctNumbers) {
  constexpr uint32_t kRows = 1000;  // the limit: (1000 + 64) / 4 = 266 distinct numbers
  for (uint32_t distinct : {1u, 250u, 265u, 266u, 267u, 400u, 1000u}) {
    SCOPED_TRACE(distinct);
    ColumnBuilder b(P({"tags", "n"}));
    std::map<double, std::vector<uint32_t>> want;
    for (uint32_t row = 0; row < kRows; ++row) {
      double v = 1000.0 - 7.5 * (row * 7919 % distinct);  // not in row order (7919 is prime)
      b.AddNumber(row, v);
      want[v].push_back(row);
    }
    ASSERT_EQ(want.size(), distinct);
    std::shared_ptr<const Column> c = std::move(b).Build();
    if (distinct > 266) {
      EXPECT_TRUE(c->distinct_numbers().empty());
      EXPECT_TRUE(c->number_postings().empty());
      continue;
    }
    ASSERT_EQ(c->distinct_numbers().size(), want.size());
    ASSERT_EQ(c->number_postings().size(), want.size());
    size_t k = 0;
    for (const auto& [v, rows] : want) {
      EXPECT_EQ(c->distinct_numbers()[k], v);
      EXPECT_EQ(c->number_postings()[k].ToVector(), rows);
      ++k;
    }
  }
  ColumnBuilder b(P({"tags", "z"}));
  b.AddNumber(0, -0.0);
  b.AddNumber(1, 1);
  b.AddNumber(2, 0.0);
  b.AddNumber(3, -0.0);
  std::shared_ptr<const Column> c = std::move(b).Build();
  ASSERT_EQ(c->distinct_numbers(), std::vector<double>({0, 1}));
  EXPECT_FALSE(std::signbit(c->distinct_numbers()[0]));
  EXPECT_EQ(c->number_postings()[0].ToVector(), std::vector<uint32_t>({0, 2, 3}));
  EXPECT_EQ(c->number_postings()[1].ToVector(), std::vector<uint32_t>({1}));
}

// Number postings against a map of each value's rows, whichever way Build finds a value's code:
// integers in a range not much wider than their count by a table, others (fractions, integers far
// apart, integers beyond 2^53) by a search. The rows of other kinds in between are not in any.
TEST(ColumnTest, NumberPostingsOfIntegersAndOtherNumbers) {
  const std::vector<std::vector<double>> value_sets = {
      {-40, -3, 0, 1, 2, 7, 50, 1000},                  // a table (range 1040 <= 4 * 8 + 1024)
      {-5000, 0, 5000},                                 // integers too far apart: a search
      {0.5, -1.25, 3, 1e-9, 1e300, -1e300},             // fractions and huge numbers
      {9007199254740992.0, 9007199254740994.0, -1, 0},  // 2^53 and past it: a search
      {-9007199254740991.0, 9007199254740991.0, 4},     // the largest exact integers, far apart
      {-0.0, 0, 1},                                     // -0 is 0
      {17}};
  for (const std::vector<double>& values : value_sets) {
    SCOPED_TRACE(values.size());
    ColumnBuilder b(P({"tags", "n"}));
    std::map<double, std::vector<uint32_t>> want;
    std::mt19937 rng(static_cast<uint32_t>(values.size()));
    for (uint32_t row = 0; row < 4000; ++row) {
      if (row % 5 == 3) {
        b.AddString(row, "s");  // another kind: not a number's row
        continue;
      }
      double v = values[rng() % values.size()];
      b.AddNumber(row, v);
      want[v == 0 ? 0.0 : v].push_back(row);
    }
    std::shared_ptr<const Column> c = std::move(b).Build();
    ASSERT_EQ(c->distinct_numbers().size(), want.size());
    ASSERT_EQ(c->number_postings().size(), want.size());
    size_t k = 0;
    for (const auto& [v, rows] : want) {
      EXPECT_EQ(c->distinct_numbers()[k], v);
      EXPECT_EQ(c->number_postings()[k].ToVector(), rows) << v;
      ++k;
    }
  }
}

TEST(ColumnTest, DroppingALongUnmergedChainDoesNotRecurse) {
  ColumnBuilder b(P({"tags", "x"}));
  for (uint32_t row = 0; row < 4; ++row) b.AddNumber(row, row);
  std::shared_ptr<const Column> c = std::move(b).Build();
  constexpr int kVersions = 200000;
  for (int i = 0; i < kVersions; ++i) {
    FlatEntry e;
    e.kind = Kind::kNumber;
    e.number = i;
    uint32_t row = static_cast<uint32_t>(i % 4);
    c = Column::Deferred(std::move(c), {row}, {{row, e}});
  }
  EXPECT_EQ(c->pending_rows(), static_cast<size_t>(kVersions));
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, 256 * 1024), 0);
  pthread_t thread;
  auto drop = [](void* p) -> void* {
    static_cast<std::shared_ptr<const Column>*>(p)->reset();
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&thread, &attr, drop, &c), 0);
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
  pthread_attr_destroy(&attr);
  EXPECT_EQ(c, nullptr);
}

// One merge resolves a chain of deferred versions whatever the layout of their rows: runs in
// ascending or descending order (a job's batches; the merge skips its sort for these), runs
// that interleave or share rows (the newest change of a row wins), empty versions and rows
// that lose their value. Checked against the same versions merged one at a time.
TEST(ColumnTest, AChainMergesAsItsVersionsOneByOne) {
  constexpr uint32_t kRows = 64;
  auto build = [] {
    ColumnBuilder b(P({"tags", "x"}));
    for (uint32_t row = 0; row < kRows; row += 2) b.AddNumber(row, -1.0 - row);
    return std::move(b).Build();
  };
  using Version = std::vector<std::pair<uint32_t, std::optional<double>>>;  // ascending rows
  auto range = [](uint32_t begin, uint32_t end, double value) {
    Version v;
    for (uint32_t row = begin; row < end; ++row) v.emplace_back(row, value + row);
    return v;
  };
  std::mt19937 gen(7);
  auto random = [&](double value) {
    Version v;
    for (uint32_t row = 0; row < kRows; ++row) {
      if (gen() % 4 != 0) continue;
      v.emplace_back(row, gen() % 5 == 0 ? std::nullopt : std::optional<double>(value + row));
    }
    return v;
  };
  std::vector<std::pair<std::string, std::vector<Version>>> cases = {
      {"ascending runs", {range(0, 10, 100), range(10, 30, 200), range(30, 64, 300)}},
      {"descending runs", {range(40, 64, 100), range(20, 40, 200), range(0, 20, 300)}},
      {"same first row", {range(5, 9, 100), range(5, 20, 200), range(5, 7, 300)}},
      {"empty versions", {{}, range(3, 6, 100), {}, range(0, 3, 200), {}}},
      {"interleaved", {random(100), random(200), random(300), random(400), random(500)}},
      {"touching runs", {range(0, 11, 100), range(10, 21, 200), range(20, 64, 300)}},
  };
  for (const auto& [name, versions] : cases) {
    SCOPED_TRACE(name);
    std::shared_ptr<const Column> chained = build(), stepwise = build();
    std::vector<std::optional<double>> expected(kRows);
    for (uint32_t row = 0; row < kRows; row += 2) expected[row] = -1.0 - row;
    for (const Version& v : versions) {
      for (const auto& [row, value] : v) expected[row] = value;
      std::vector<uint32_t> changed;
      std::vector<std::pair<uint32_t, FlatEntry>> entries;
      for (const auto& [row, value] : v) {
        changed.push_back(row);
        if (!value) continue;
        FlatEntry e;
        e.kind = Kind::kNumber;
        e.number = *value;
        entries.emplace_back(row, e);
      }
      chained = Column::Deferred(std::move(chained), changed, entries);
      stepwise = Column::Deferred(std::move(stepwise), changed, entries);
      stepwise->numbers();  // merged now: a chain of one
    }
    size_t pending = 0;
    for (const Version& v : versions) pending += v.size();
    EXPECT_EQ(chained->pending_rows(), pending);
    for (uint32_t row = 0; row < kRows; ++row) {
      std::string want = expected[row] ? ToJson(Value::Number(*expected[row])) : "undefined";
      EXPECT_EQ(ToJson(chained->ValueAt(row)), want) << "row " << row;
      EXPECT_EQ(ToJson(stepwise->ValueAt(row)), want) << "row " << row;
    }
    EXPECT_EQ(chained->numbers(), stepwise->numbers());
    EXPECT_EQ(chained->present().ToVector(), stepwise->present().ToVector());
  }
}

// A long chain of small versions whose rows interleave (single-twin patches of a large table):
// the merge sorts its changes by row and age over several digits of both (rows in the
// millions, thousands of versions), and the newest change of each row wins, as when the
// versions are merged one by one.
TEST(ColumnTest, ALongInterleavedChainMergesAsItsVersionsOneByOne) {
  constexpr uint32_t kRows = 5'000'000;
  constexpr int kVersions = 5000;
  std::mt19937 gen(11);
  std::vector<uint32_t> rows_used;  // a few hundred rows, so that rows repeat across versions
  for (int i = 0; i < 300; ++i) rows_used.push_back(gen() % kRows);
  rows_used.push_back(kRows - 1);
  rows_used.push_back(0);
  std::map<uint32_t, std::optional<double>> expected;
  ColumnBuilder b(P({"tags", "x"}));
  std::vector<uint32_t> base_rows = rows_used;
  std::sort(base_rows.begin(), base_rows.end());
  base_rows.erase(std::unique(base_rows.begin(), base_rows.end()), base_rows.end());
  for (uint32_t row : base_rows) {
    if (row % 3 == 0) continue;
    b.AddNumber(row, -1.0 * row);
    expected[row] = -1.0 * row;
  }
  std::shared_ptr<const Column> chained = std::move(b).Build();
  std::shared_ptr<const Column> stepwise = chained;
  size_t pending = 0;
  for (int v = 0; v < kVersions; ++v) {
    std::vector<uint32_t> changed;
    for (int k = 1 + static_cast<int>(gen() % 3); k > 0; --k) {
      changed.push_back(rows_used[gen() % rows_used.size()]);
    }
    std::sort(changed.begin(), changed.end());
    changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
    std::vector<std::pair<uint32_t, FlatEntry>> entries;
    for (uint32_t row : changed) {
      if (gen() % 7 == 0) {
        expected[row] = std::nullopt;  // the row loses its value
        continue;
      }
      FlatEntry e;
      e.kind = Kind::kNumber;
      e.number = v * 10.0 + row % 10;
      expected[row] = e.number;
      entries.emplace_back(row, e);
    }
    pending += changed.size();
    chained = Column::Deferred(std::move(chained), changed, entries);
    stepwise = Column::Deferred(std::move(stepwise), changed, entries);
    if (v % 97 == 0) stepwise->numbers();  // merged now and then: shorter chains
  }
  EXPECT_EQ(chained->pending_rows(), pending);
  for (const auto& [row, value] : expected) {
    std::string want = value ? ToJson(Value::Number(*value)) : "undefined";
    EXPECT_EQ(ToJson(chained->ValueAt(row)), want) << "row " << row;
    EXPECT_EQ(ToJson(stepwise->ValueAt(row)), want) << "row " << row;
  }
  EXPECT_EQ(chained->numbers(), stepwise->numbers());
  EXPECT_EQ(chained->present().ToVector(), stepwise->present().ToVector());
  size_t present = 0;
  for (const auto& [row, value] : expected) present += value.has_value();
  EXPECT_EQ(chained->present().Cardinality(), present);
}

// A merge copies the old values between two changed rows as one run, counted by the rows the
// kind's bitmap holds in between: checked on a column whose bitmaps have run, bitset and array
// containers, with changes that keep, switch, drop and add values (also past the last row),
// against the column built from scratch from the resulting values.
TEST(ColumnTest, AMergeOfALargeColumnIsTheColumnBuiltFromItsValues) {
  constexpr uint32_t kRows = 210'000;
  struct Cell {
    Kind kind;
    double number = 0;
    std::string string;
    uint32_t length = 0;
  };
  std::map<uint32_t, Cell> cells;
  for (uint32_t row = 0; row < 70'000; ++row)
    cells[row] = {Kind::kNumber, row * 0.5, "", 0};       // runs
  for (uint32_t row = 70'000; row < 140'000; row += 3) {  // bitsets
    cells[row] = {Kind::kString, 0, fmt::format("s{}", row % 1000), 0};
  }
  for (uint32_t row = 140'000; row < 200'000; row += 50) {  // arrays
    cells[row] = {Kind::kArray, 0, "", row % 7};
  }
  auto build = [&] {
    ColumnBuilder b(P({"tags", "x"}));
    for (const auto& [row, cell] : cells) {
      switch (cell.kind) {
        case Kind::kNumber:
          b.AddNumber(row, cell.number);
          break;
        case Kind::kString:
          b.AddString(row, cell.string);
          break;
        default:
          b.AddArray(row, cell.length);
      }
    }
    return std::move(b).Build();
  };
  std::shared_ptr<const Column> merged = build();
  std::mt19937 gen(23);
  std::vector<uint32_t> changed;
  for (int i = 0; i < 3000; ++i) changed.push_back(gen() % kRows);
  for (uint32_t row : {0u, 1u, 69'999u, 70'000u, 139'998u, 199'950u, kRows - 1}) {
    changed.push_back(row);
  }
  std::sort(changed.begin(), changed.end());
  changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
  std::vector<std::pair<uint32_t, FlatEntry>> entries;
  for (uint32_t row : changed) {
    FlatEntry e;
    switch (gen() % 4) {
      case 0:
        cells.erase(row);  // the row loses its value
        continue;
      case 1:
        e.kind = Kind::kNumber;
        e.number = -1.0 * row;
        cells[row] = {Kind::kNumber, e.number, "", 0};
        break;
      case 2:
        e.kind = Kind::kString;
        e.string = fmt::format("new{}", row % 5);
        cells[row] = {Kind::kString, 0, e.string, 0};
        break;
      default:
        e.kind = Kind::kArray;
        e.length = row % 3;
        cells[row] = {Kind::kArray, 0, "", e.length};
    }
    entries.emplace_back(row, e);
  }
  merged = Column::Deferred(std::move(merged), changed, entries);
  std::shared_ptr<const Column> fresh = build();
  EXPECT_EQ(merged->numbers(), fresh->numbers());
  EXPECT_EQ(merged->array_lengths(), fresh->array_lengths());
  EXPECT_EQ(merged->present().ToVector(), fresh->present().ToVector());
  for (Kind k : {Kind::kNumber, Kind::kString, Kind::kArray}) {
    EXPECT_EQ(merged->rows(k).ToVector(), fresh->rows(k).ToVector()) << static_cast<int>(k);
  }
  size_t differ = 0;
  for (uint32_t row = 0; row < kRows; ++row) {
    if (merged->ValueAt(row) != fresh->ValueAt(row)) ++differ;
  }
  EXPECT_EQ(differ, 0u);
}

// A built column holds `values` (one string per row, rows 0..n-1): its dictionary is their
// distinct strings in order, and each row reads back its own string.
void ExpectColumnHoldsStrings(const Column& c, const std::vector<std::string>& values,
                              const std::string& context) {
  std::vector<std::string> want = values;
  std::sort(want.begin(), want.end());
  want.erase(std::unique(want.begin(), want.end()), want.end());
  ASSERT_EQ(c.dictionary().size(), want.size()) << context;
  for (uint32_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(c.dictionary().String(i), want[i]) << context << ", code " << i;
  }
  for (uint32_t row = 0; row < values.size(); ++row) {
    EXPECT_EQ(c.ValueAt(row), Value::String(values[row])) << context << ", row " << row;
  }
}

// The builder's tables take a slot from the low bits of HashBytes: a change of any one byte of
// a string, at any position and of any length up to 40, must change them (nearly) every time.
TEST(HashBytesTest, EveryByteReachesTheLowBits) {
  for (size_t n = 1; n <= 40; ++n) {
    std::string base;
    for (size_t i = 0; i < n; ++i) base.push_back(static_cast<char>('a' + i % 26));
    for (size_t at = 0; at < n; ++at) {
      std::set<uint64_t> low;
      std::string s = base;
      for (int v = 0; v < 256; ++v) {
        s[at] = static_cast<char>(v);
        low.insert(HashBytes(s) & 0xFFFF);
      }
      // 256 random values in 65,536 slots collide about once.
      EXPECT_GE(low.size(), 250u) << "length " << n << ", byte " << at;
    }
  }
  std::set<uint64_t> zeros;  // "", "\0", "\0\0", ...: the length counts too
  for (size_t n = 0; n <= 40; ++n) zeros.insert(HashBytes(std::string(n, '\0')));
  EXPECT_EQ(zeros.size(), 41u);
  EXPECT_EQ(HashBytes(std::string("2024-12-22T00:00:12.3456789Z")),
            HashBytes(std::string_view("x2024-12-22T00:00:12.3456789Z").substr(1)));
}

// EqualBytes compares in words and overlapping tails: a difference in any one byte (any bit of
// it), at any length up to 40, must be seen, and equal strings at different addresses must match.
TEST(HashBytesTest, EqualBytesIsStringEquality) {
  for (size_t n = 0; n <= 40; ++n) {
    std::string a;
    for (size_t i = 0; i < n; ++i) a.push_back(static_cast<char>('A' + i * 7 % 50));
    const std::string copy = "." + a;  // the same bytes elsewhere, at another alignment
    EXPECT_TRUE(EqualBytes(a, std::string_view(copy).substr(1))) << "length " << n;
    EXPECT_FALSE(EqualBytes(a, a + "x")) << "length " << n;
    EXPECT_FALSE(EqualBytes(a + "x", a)) << "length " << n;
    for (size_t at = 0; at < n; ++at) {
      for (int bit = 0; bit < 8; ++bit) {
        std::string b = a;
        b[at] = static_cast<char>(b[at] ^ (1 << bit));
        EXPECT_FALSE(EqualBytes(a, b)) << "length " << n << ", byte " << at << ", bit " << bit;
        EXPECT_FALSE(EqualBytes(b, a)) << "length " << n << ", byte " << at << ", bit " << bit;
      }
    }
  }
}

// ColumnBuilder lists neither the rows nor the kinds of its entries while every row so far has an
// entry and all are of one kind (most columns of a fleet); it lists them from the first entry
// that breaks either (SpillRows, SpillKinds). Wherever the first missing row and the first other
// kind come, at sizes around OfIncreasing's shortest range (64 rows), the column must hold
// exactly its entries: presence, rows per kind, values, array lengths and postings.
TEST(ColumnTest, ColumnsOfEveryRowAndOneKindAndThoseThatStopBeing) {
  constexpr uint32_t kNever = UINT32_MAX;
  const std::vector<Kind> cycle = {Kind::kNumber, Kind::kString, Kind::kNull,  Kind::kTrue,
                                   Kind::kFalse,  Kind::kArray,  Kind::kObject};
  int built = 0;
  for (uint32_t n : {0u, 1u, 2u, 3u, 63u, 64u, 65u, 300u}) {
    std::vector<uint32_t> breaks = {kNever};
    for (uint32_t at : {0u, 1u, n / 2, n - 1}) {
      if (at < n && std::find(breaks.begin(), breaks.end(), at) == breaks.end()) {
        breaks.push_back(at);
      }
    }
    for (uint32_t gap : breaks) {
      for (uint32_t other : breaks) {
        for (Kind first : {Kind::kString, Kind::kNumber}) {
          const std::string context =
              fmt::format("n {}, first gap at entry {}, first other kind at entry {}, first {}", n,
                          gap == kNever ? -1 : static_cast<int64_t>(gap),
                          other == kNever ? -1 : static_cast<int64_t>(other), KindName(first));
          ColumnBuilder b(P({"tags", "m"}));
          std::map<uint32_t, std::pair<Kind, Value>> want;  // row -> kind, scalar value
          std::vector<uint32_t> want_lengths;
          for (uint32_t i = 0; i < n; ++i) {
            // One row missing at the first gap, then one more every 100 entries.
            const uint32_t row = i < gap ? i : i + 1 + (i - gap) / 100;
            const Kind k = i < other ? first : cycle[i % cycle.size()];
            Value v;
            switch (k) {
              case Kind::kNumber:
                v = Value::Number((row % 4) * 1.5);
                b.AddNumber(row, v.as_number());
                break;
              case Kind::kString:
                v = Value::String("s" + std::to_string(row % 5));
                b.AddString(row, v.as_string());
                break;
              case Kind::kNull:
                v = Value::Null();
                b.AddNull(row);
                break;
              case Kind::kTrue:
              case Kind::kFalse:
                v = Value::Bool(k == Kind::kTrue);
                b.AddBool(row, k == Kind::kTrue);
                break;
              case Kind::kArray:
                want_lengths.push_back(row % 3);
                b.AddArray(row, row % 3);
                break;
              case Kind::kObject:
                b.AddObject(row);
                break;
            }
            want[row] = {k, v};
          }
          EXPECT_EQ(b.empty(), n == 0) << context;
          std::shared_ptr<const Column> c = std::move(b).Build();
          ++built;
          std::vector<uint32_t> rows;
          std::array<std::vector<uint32_t>, kKindCount> by_kind;
          for (const auto& [row, kv] : want) {
            rows.push_back(row);
            by_kind[static_cast<size_t>(kv.first)].push_back(row);
          }
          EXPECT_EQ(c->present().ToVector(), rows) << context;
          for (size_t k = 0; k < kKindCount; ++k) {
            const Kind kind = static_cast<Kind>(k);
            EXPECT_EQ(c->rows(kind).ToVector(), by_kind[k]) << context << ", " << KindName(kind);
            EXPECT_EQ(c->stats().kind_counts[k], by_kind[k].size()) << context;
          }
          EXPECT_EQ(c->array_lengths(), want_lengths) << context;
          const uint32_t end = rows.empty() ? 2 : rows.back() + 2;
          for (uint32_t row = 0; row < end; ++row) {
            bool present = false;
            const Kind k = c->KindAt(row, &present);
            auto it = want.find(row);
            ASSERT_EQ(present, it != want.end()) << context << ", row " << row;
            if (!present) continue;
            EXPECT_EQ(k, it->second.first) << context << ", row " << row;
            if (k != Kind::kArray && k != Kind::kObject) {
              EXPECT_EQ(c->ValueAt(row), it->second.second) << context << ", row " << row;
            }
          }
          // Postings (this column's few distinct values have them) hold the rows of their value.
          ASSERT_TRUE(c->has_string_postings()) << context;
          for (uint32_t code = 0; code < c->string_postings_list().size(); ++code) {
            std::vector<uint32_t> holding;
            for (const auto& [row, kv] : want) {
              if (kv.first == Kind::kString &&
                  kv.second.as_string() == c->dictionary().String(code)) {
                holding.push_back(row);
              }
            }
            EXPECT_EQ(c->string_posting(code).ToVector(), holding) << context << ", code " << code;
          }
          for (size_t k = 0; k < c->number_postings().size(); ++k) {
            std::vector<uint32_t> holding;
            for (const auto& [row, kv] : want) {
              if (kv.first == Kind::kNumber && kv.second.as_number() == c->distinct_numbers()[k]) {
                holding.push_back(row);
              }
            }
            EXPECT_EQ(c->number_postings()[k].ToVector(), holding) << context << ", number " << k;
          }
        }
      }
    }
  }
  EXPECT_EQ(built, 2 * (1 + 2 * 2 + 3 * 3 + 4 * 4 + 4 * 5 * 5));
}

// ColumnBuilder::Build sorts the distinct strings by an 8-byte key after their shared prefix,
// then by the strings where keys tie. Strings that differ only past the key, in NUL bytes (the
// key's padding), or in length must still come out in std::string order, each code mapping back
// to its string. Over 4096 distinct strings, so that the keys are radix-sorted (SortByKey).
TEST(ColumnTest, BuildSortsStringsThatTieOnTheirKeys) {
  std::mt19937 rng(3);
  const std::string prefix = "2024-12-22T00:";
  std::vector<std::string> pool = {"",
                                   std::string(1, '\0'),
                                   std::string(2, '\0'),
                                   "a",
                                   std::string("a\0", 2),
                                   "ab",
                                   "\xff",
                                   "\x80\x01"};
  for (int i = 0; i < 6000; ++i) {
    std::string s = prefix;
    int len = static_cast<int>(rng() % 14);
    for (int k = 0; k < len; ++k) s.push_back("01\0\xff:."[rng() % 6]);
    pool.push_back(s);
  }
  for (bool shared : {false, true}) {
    ColumnBuilder b(P({"tags", "s"}));
    std::vector<std::string> values;
    for (uint32_t row = 0; row < 16000; ++row) {
      const std::string& v =
          shared ? pool[8 + rng() % (pool.size() - 8)] : pool[rng() % pool.size()];
      values.push_back(v);
      b.AddString(row, v);
    }
    std::shared_ptr<const Column> c = std::move(b).Build();
    ExpectColumnHoldsStrings(*c, values, shared ? "shared prefix" : "no shared prefix");
  }
}

// A column whose first 1024 strings are (nearly) all distinct stops interning (ColumnBuilder::
// AddString): every later string gets a temporary code of its own, and Build merges the equal
// ones after sorting. Strings that repeat after the switch (earlier ones, and new ones more than
// once), with and without a shared prefix, must still give one dictionary entry each, and every
// row its own string. A column with repeats among its first strings keeps interning: the oracle
// is the same.
TEST(ColumnTest, NearUniqueColumnsStopInterningAndStillDeduplicate) {
  std::mt19937 rng(5);
  for (int variant = 0; variant < 3; ++variant) {
    ColumnBuilder b(P({"tags", "t"}));
    std::vector<std::string> values;
    const std::string prefix = variant == 1 ? "2024-12-22T00:00:" : "";
    for (uint32_t row = 0; row < 5000; ++row) {
      std::string v;
      if (row < 1024) {
        // variant 2: a handful of values first, so the column keeps interning
        v = prefix + (variant == 2 ? std::to_string(row % 7) : std::to_string(row * 7919));
      } else if (row % 3 == 0) {
        v = values[rng() % values.size()];  // an earlier string again
      } else {
        v = prefix + "n" + std::to_string(rng() % 900);  // new strings, most of them repeated
      }
      values.push_back(v);
      b.AddString(row, v);
    }
    std::shared_ptr<const Column> c = std::move(b).Build();
    ExpectColumnHoldsStrings(*c, values, "variant " + std::to_string(variant));
    std::vector<std::string> want = values;
    std::sort(want.begin(), want.end());
    want.erase(std::unique(want.begin(), want.end()), want.end());
    // Postings, where the column has them, hold exactly the rows of their string.
    if (!c->string_postings_list().empty()) {
      for (uint32_t code = 0; code < want.size(); ++code) {
        c->string_posting(code).ForEach(
            [&](uint32_t row) { EXPECT_EQ(values[row], want[code]) << "variant " << variant; });
      }
    }
  }
}

// Each desired patch writes new $lastUpdated timestamps; the merges must not keep the old ones
// (they did, and the dictionaries grew with the number of patches, not of devices).
TEST(FleetTest, DictionariesKeepOnlyTheStringsRowsHold) {
  std::string text;
  for (int i = 0; i < 20; ++i)
    text += fmt::format(R"({{"deviceId":"d{}","tags":{{"k":"v{}"}}}})"
                        "\n",
                        i, i % 3);
  Fleet fleet(Twins(text));
  for (int i = 0; i < 3000; ++i) {
    Expected<Value> patch = ParseJson(
        fmt::format(R"({{"properties":{{"desired":{{"fw":"{}"}}}},"tags":{{"k":"w{}"}}}})", i,
                    i % 5),
        "p");
    std::string now =
        fmt::format("2026-01-01T00:{:02}:{:02}.{:07}Z", i / 3600 % 60, i / 60 % 60, i);
    ASSERT_TRUE(fleet.Patch(fmt::format("d{}", i % 20), "", *patch, "*", now).ok());
  }
  const Table& t = fleet.snapshot().devices();
  size_t checked = 0;
  for (const auto& c : t.columns()) {
    const size_t held = c->rows(Kind::kString).Cardinality();
    EXPECT_LE(c->dictionary().size(), held) << PathDisplay(c->path());
    checked += held > 0;
  }
  EXPECT_GE(checked, 5u);  // deviceId, etag, tags.k, desired.fw and its $metadata timestamps
  const Column* stamp = t.FindExact(P({"properties", "desired", "$metadata", "$lastUpdated"}));
  ASSERT_NE(stamp, nullptr);
  EXPECT_EQ(stamp->dictionary().size(), 20u);
  const Column* k = t.FindExact(P({"tags", "k"}));
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->dictionary().size(), 5u);  // w0..w4: v0..v2 went with the first merge
}

TEST(FleetTest, OpenRefusesDirectoriesAndMissingFiles) {
  Expected<std::unique_ptr<Fleet>> dir = Fleet::Open(TWINQ_SOURCE_DIR);
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.error().message.find("is a directory"), std::string::npos) << dir.error().message;
  Expected<std::unique_ptr<Fleet>> missing = Fleet::Open("/nonexistent/fleet.twinq");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("cannot read"), std::string::npos);
  Expected<std::unique_ptr<Fleet>> dev = Fleet::Open("/dev/null");
  ASSERT_FALSE(dev.ok());
  EXPECT_NE(dev.error().message.find("not a regular file"), std::string::npos);
}

// Loads a generated fleet of `devices` devices (GenerateFleet's defaults otherwise).
void LoadGenerated(size_t devices, Fleet* fleet) {
  FleetSpec spec;
  spec.devices = devices;
  std::string text = GenerateFleetNdjson(spec);
  ASSERT_TRUE(fleet->LoadTwinsText(text, "gen").ok());
}

std::string ReadWholeFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return "<missing>";
  std::string out;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

// Save streams the file (the rows' texts go from the documents to the file through a buffer of
// 1 MiB, checksummed on the way; the header is written last); Serialize builds the same bytes in
// memory and is the oracle: an empty fleet, one of several buffers, and one with patched,
// deleted and added twins.
TEST(FleetTest, SaveWritesExactlyWhatSerializeBuilds) {
  const std::string path = ::testing::TempDir() + "/save_streams.twinq";
  auto expect_saved = [&](const Fleet& fleet, const std::string& what) {
    Expected<size_t> n = fleet.Save(path);
    ASSERT_TRUE(n.ok()) << what << ": " << n.error().message;
    std::string want = fleet.Serialize();
    std::string got = ReadWholeFile(path);
    EXPECT_EQ(*n, want.size()) << what;
    EXPECT_TRUE(got == want) << what << ": " << got.size() << " bytes saved, " << want.size()
                             << " serialized";
    EXPECT_EQ(ReadWholeFile(path + ".tmp"), "<missing>") << what;
    Expected<std::unique_ptr<Fleet>> opened = Fleet::Open(path);
    ASSERT_TRUE(opened.ok()) << what << ": " << opened.error().message;
    EXPECT_TRUE((*opened)->Serialize() == want) << what;
  };
  Fleet empty{TwinSet{}};
  expect_saved(empty, "empty");

  Fleet fleet{TwinSet{}};
  LoadGenerated(1500, &fleet);
  ASSERT_GT(fleet.Serialize().size(), size_t{3} << 20);
  expect_saved(fleet, "generated");

  std::string now = "2026-11-27T00:00:00.0000000Z";
  Snapshot s = fleet.snapshot();
  std::vector<Mutation> batch;
  for (uint32_t row : s.devices().order()) {
    Mutation m;
    m.device_id = std::string(s.devices().device_id(row));
    if (row % 7 == 0) {
      m.kind = Mutation::Kind::kDelete;
    } else if (row % 5 == 0) {
      m.kind = Mutation::Kind::kPatch;
      m.patch = ParseJson(R"({"tags":{"saved":"yes"}})", "p").value();
      m.if_match = "*";
    } else {
      continue;
    }
    batch.push_back(std::move(m));
  }
  Mutation add;
  add.kind = Mutation::Kind::kUpsert;
  add.device_id = "added-device";
  add.doc = ParseJson(R"({"deviceId":"added-device","tags":{"t":1}})", "twin").value();
  batch.push_back(std::move(add));
  Expected<uint64_t> applied = fleet.Apply(batch, now);
  ASSERT_TRUE(applied.ok()) << applied.error().message;
  expect_saved(fleet, "patched, deleted and added");
}

// A save that cannot be done says why and leaves nothing behind; the file it would have
// replaced is untouched.
TEST(FleetTest, SaveFailuresLeaveNoTemporaryFile) {
  Fleet fleet{TwinSet{}};
  LoadGenerated(20, &fleet);
  Expected<size_t> no_dir = fleet.Save("/nonexistent/dir/fleet.twinq");
  ASSERT_FALSE(no_dir.ok());
  EXPECT_NE(no_dir.error().message.find("cannot write"), std::string::npos)
      << no_dir.error().message;

  // The target is a directory: the rename fails, and the temporary file is removed.
  const std::string dir = ::testing::TempDir() + "/save_onto_dir";
  ::mkdir(dir.c_str(), 0755);
  Expected<size_t> onto_dir = fleet.Save(dir);
  ASSERT_FALSE(onto_dir.ok());
  EXPECT_NE(onto_dir.error().message.find("cannot replace"), std::string::npos)
      << onto_dir.error().message;
  EXPECT_EQ(ReadWholeFile(dir + ".tmp"), "<missing>");
}
// Fleet::Open keeps the documents as views into the mapped file: they must outlive the fleet
// (a snapshot keeps them), survive the file being replaced or removed, and be replaced by
// patches like any other document; Deserialize (copies) is the oracle.
TEST(FleetTest, OpenedDocumentsLiveInTheMappingAsLongAsTheyAreReferenced) {
  Fleet built{TwinSet{}};
  LoadGenerated(300, &built);
  std::string path = ::testing::TempDir() + "/mapped_docs.twinq";
  ASSERT_TRUE(built.Save(path).ok());
  std::string saved = built.Serialize();

  Expected<std::unique_ptr<Fleet>> opened = Fleet::Open(path);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  Expected<std::unique_ptr<Fleet>> copied = Fleet::Deserialize(saved, "copy");
  ASSERT_TRUE(copied.ok());
  EXPECT_EQ((*opened)->Serialize(), saved);

  // The file goes away (replaced by a rename, as Save does, then removed): nothing changes.
  ASSERT_TRUE(built.Save(path).ok());
  ASSERT_EQ(std::remove(path.c_str()), 0);
  Snapshot before = (*opened)->snapshot();
  std::string now = "2026-11-27T00:00:00.0000000Z";
  Value patch =
      ParseJson(R"({"tags":{"mapped":"no"},"properties":{"desired":{"x":1}}})", "p").value();
  for (uint32_t row : before.devices().order()) {
    if (row % 3 != 0) continue;
    std::string id(before.devices().device_id(row));
    ASSERT_TRUE((*opened)->Patch(id, "", patch, "*", now).ok());
    ASSERT_TRUE((*copied)->Patch(id, "", patch, "*", now).ok());
  }
  EXPECT_EQ((*opened)->Serialize(), (*copied)->Serialize());

  // The fleet goes away; the snapshot taken before the patches still reads every document.
  std::unique_ptr<Fleet> gone = std::move(opened.value());
  gone.reset();
  Expected<std::unique_ptr<Fleet>> again = Fleet::Deserialize(saved, "again");
  ASSERT_TRUE(again.ok());
  Snapshot expect = (*again)->snapshot();
  for (const auto& [got_t, want_t] : {std::pair{&before.devices(), &expect.devices()},
                                      std::pair{&before.modules(), &expect.modules()}}) {
    ASSERT_EQ(got_t->row_count(), want_t->row_count());
    for (uint32_t row = 0; row < got_t->row_count(); ++row) {
      ASSERT_EQ(got_t->doc_json(row), want_t->doc_json(row)) << "row " << row;
    }
  }
}

// LoadTwinsFile with InputDocs::kKeepInput (what `twinq index build` uses) stores the documents
// the file spells compactly as views of the file, and copies the others printed as usual: the
// fleet is the one kCopy loads, byte for byte, with documents spelled otherwise (spaces, numbers
// written another way, escapes, one over several lines, twins inside an array, module twins).
// The views live on after the file is removed, and patches replace them as any document.
TEST(FleetTest, LoadTwinsFileCanKeepTheDocumentsInTheInput) {
  FleetSpec spec;
  spec.devices = 200;
  std::string text = GenerateFleetNdjson(spec);
  text += "{ \"deviceId\" : \"spaced\", \"tags\": {\"x\": 1} }\n";
  text += R"({"deviceId":"numbers","tags":{"a":1.50,"b":1e2,"c":-0}})"
          "\n";
  text += R"({"deviceId":"escaped","tags":{"s":"\u00e9\/"}})"
          "\n";
  text += "{\"deviceId\":\"lines\",\n\"tags\":{}}\n";
  text += R"([{"deviceId":"in-array","tags":{}},{"deviceId":"in-array","moduleId":"m"}])"
          "\n";
  text += R"({"deviceId":"compact","moduleId":"m2","tags":{"k":"v"}})"
          "\n";
  const std::string path = ::testing::TempDir() + "/keep_input.ndjson";
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fwrite(text.data(), 1, text.size(), f), text.size());
    std::fclose(f);
  }
  Fleet copied, kept;
  Expected<size_t> a = copied.LoadTwinsFile(path);
  ASSERT_TRUE(a.ok()) << a.error().message;
  Expected<size_t> b = kept.LoadTwinsFile(path, Fleet::InputDocs::kKeepInput);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(*a, *b);
  ASSERT_EQ(std::remove(path.c_str()), 0);
  EXPECT_TRUE(kept.Serialize() == copied.Serialize());

  // Which documents are the file's own bytes: those the file spells as the table prints them.
  // A view is followed in the file by the newline and the next line, a copy by the next copy of
  // its chunk (or nothing).
  size_t views = 0, copies = 0;
  Snapshot ks = kept.snapshot(), cs = copied.snapshot();
  for (const auto& [t, other] :
       {std::pair{&ks.devices(), &cs.devices()}, std::pair{&ks.modules(), &cs.modules()}}) {
    ASSERT_EQ(t->row_count(), other->row_count());
    for (uint32_t row = 0; row < t->row_count(); ++row) {
      std::string_view doc = t->doc_json(row);
      ASSERT_EQ(doc, other->doc_json(row));
      bool view = text.find(std::string(doc) + "\n") != std::string::npos;
      std::string id(t->device_id(row));
      if (id == "spaced" || id == "numbers" || id == "escaped" || id == "lines" ||
          id == "in-array") {
        EXPECT_FALSE(view) << id;  // not spelled as printed, or no text of its own
      }
      if (view) {
        // The byte after it is the file's newline: it points into the file.
        EXPECT_EQ(doc.data()[doc.size()], '\n') << id;
        ++views;
      } else {
        ++copies;
      }
    }
  }
  EXPECT_GE(views, 200u);  // every generated twin, and the compact module twin
  EXPECT_GE(copies, 2u);

  // Patches replace views as any document; the fleets stay the same.
  Value patch = ParseJson(R"({"tags":{"kept":"no"}})", "p").value();
  const std::string now = "2026-11-28T00:00:00.0000000Z";
  Snapshot s = copied.snapshot();
  for (uint32_t row : s.devices().order()) {
    if (row % 4 != 0) continue;
    std::string id(s.devices().device_id(row));
    ASSERT_TRUE(copied.Patch(id, "", patch, "*", now).ok());
    ASSERT_TRUE(kept.Patch(id, "", patch, "*", now).ok());
  }
  EXPECT_TRUE(kept.Serialize() == copied.Serialize());
}

// Fleet::Open checks the checksum by reading the file in pieces of 1 MiB (not through the
// mapping): a file of several pieces, every truncation point near the header and the piece
// boundaries, and byte flips in every piece, give exactly what Deserialize of the same bytes
// gives (the same fleet, or the same error), also under a version 1 header (the one-lane
// checksum).
TEST(FleetTest, OpenChecksTheFileAsDeserializeChecksTheBytes) {
  Fleet built{TwinSet{}};
  LoadGenerated(1500, &built);  // a file of several MiB
  const std::string good = built.Serialize();
  constexpr size_t kHeader = 28, kPiece = size_t{1} << 20;
  ASSERT_GT(good.size(), kHeader + 3 * kPiece);
  const std::string path = ::testing::TempDir() + "/open_checks.twinq";
  auto open_as_deserialize = [&](const std::string& bytes, const std::string& what) {
    {
      std::FILE* f = std::fopen(path.c_str(), "wb");
      ASSERT_NE(f, nullptr);
      ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
      std::fclose(f);
    }
    Expected<std::unique_ptr<Fleet>> opened = Fleet::Open(path);
    Expected<std::unique_ptr<Fleet>> expected = Fleet::Deserialize(bytes, path);
    ASSERT_EQ(opened.ok(), expected.ok()) << what;
    if (opened.ok()) {
      EXPECT_EQ((*opened)->Serialize(), (*expected)->Serialize()) << what;
    } else {
      EXPECT_EQ(opened.error().message, expected.error().message) << what;
    }
  };
  open_as_deserialize(good, "the file as saved");
  std::vector<size_t> cuts = {0, 1, 8, 12, 27, 28, 29, good.size() - 1};
  for (size_t piece = 1; kHeader + piece * kPiece < good.size(); ++piece) {
    for (size_t d : {size_t{0}, size_t{1}, size_t{31}, size_t{32}}) {
      cuts.push_back(kHeader + piece * kPiece - d);
      cuts.push_back(kHeader + piece * kPiece + d);
    }
  }
  for (size_t n : cuts) {
    if (n < good.size()) open_as_deserialize(good.substr(0, n), fmt::format("cut at {}", n));
  }
  for (size_t at = 0; at < good.size(); at += kPiece / 3) {
    for (size_t pos : {at, at + 7, at + 29}) {
      if (pos >= good.size()) continue;
      std::string bad = good;
      bad[pos] = static_cast<char>(bad[pos] ^ 0x10);
      open_as_deserialize(bad, fmt::format("byte {} flipped", pos));
    }
  }
  std::string last = good;
  last.back() = static_cast<char>(last.back() ^ 0x01);
  open_as_deserialize(last, "last byte flipped");
  // Version 1: the same payload under the one-lane checksum.
  std::string v1 = SealIndexPayload(std::string_view(good).substr(kHeader), 1);
  open_as_deserialize(v1, "version 1");
  // It passes the checksum (both ways, or the messages above would differ) and then fails on
  // the layout: a version 3 payload is not a version 1 one.
  Expected<std::unique_ptr<Fleet>> old = Fleet::Deserialize(v1, "v1");
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().message.find("checksum"), std::string::npos) << old.error().message;
  std::remove(path.c_str());
}

TEST(FleetTest, FindRowByHashAgreesWithTheOrder) {
  // Devices with modules, deletions, re-upserts (new rows for old ids) and ids that collide in
  // nothing but their prefix; every id asked of every version, live or not.
  std::string text;
  for (int d = 0; d < 300; ++d) {
    text += fmt::format(R"({{"deviceId":"d{}"}})", d) + "\n";
    for (int m = 0; m < d % 3; ++m) {
      text += fmt::format(R"({{"deviceId":"d{}","moduleId":"m{}"}})", d, m) + "\n";
    }
  }
  Fleet fleet(Twins(text));
  std::vector<Snapshot> versions{fleet.snapshot()};
  for (int step = 0; step < 40; ++step) {
    std::vector<Mutation> batch;
    for (int k = 0; k < 7; ++k) {
      int d = (step * 37 + k * 11) % 320;  // d300..d319 are new devices
      Mutation m;
      std::string id = fmt::format("d{}", d);
      bool exists = versions.back().devices().FindRowByOrder(id).has_value();
      if (exists && (step + k) % 3 == 0) {
        m.kind = Mutation::Kind::kDelete;
        m.device_id = id;
      } else {
        m.kind = Mutation::Kind::kUpsert;
        m.doc = *ParseJson(fmt::format(R"({{"deviceId":"{}","tags":{{"s":{}}}}})", id, step), "d");
      }
      batch.push_back(std::move(m));
    }
    Expected<uint64_t> v = fleet.Apply(batch, "2026-01-01T00:00:00.0000000Z");
    if (!v.ok()) continue;  // a batch deleting one id twice fails whole: fine, nothing changed
    versions.push_back(fleet.snapshot());
  }
  ASSERT_GT(versions.size(), 20u);
  for (const Snapshot& s : versions) {
    for (int d = 0; d < 330; ++d) {
      std::string id = fmt::format("d{}", d);
      EXPECT_EQ(s.devices().FindRow(id), s.devices().FindRowByOrder(id)) << id;
      for (int m = 0; m < 3; ++m) {
        std::string mid = fmt::format("m{}", m);
        EXPECT_EQ(s.modules().FindRow(id, mid), s.modules().FindRowByOrder(id, mid)) << id;
      }
    }
  }
}

}  // namespace
}  // namespace twinq::index
