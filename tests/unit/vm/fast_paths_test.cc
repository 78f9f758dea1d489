// The VM's fast paths against their oracles: the reference evaluator over the same documents
// (and the VM with optimisations off, which takes none of them). Each test also checks that the
// fast path was taken (EXPLAIN), so that it cannot pass by falling back to the slow path.
//   - IdLookup through the table's id hash (device and module tables; versions with deleted,
//     re-added and added rows; enough additions to rebuild the hash);
//   - STARTSWITH(deviceId, ...) as a run of the id order;
//   - NumberRange (p >(=) a AND p <(=) b merged), from postings or one scan of the numbers;
//   - residuals of one path evaluated once per distinct value (LOWER, arithmetic, 0 and -0);
//   - InIdOrderByRank against InIdOrder;
//   - the binder's hashed IN de-duplication.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "engine/check/bound.h"
#include "engine/common/json_reader.h"
#include "engine/common/source.h"
#include "engine/ref/query.h"
#include "engine/vm/compiler.h"
#include "engine/vm/interpreter.h"
#include "engine/vm/query.h"
#include "index/fleet.h"
#include "index/table.h"
#include "tools/frontend.h"

namespace twinq::vm {
namespace {

using index::Table;

Value Doc(const std::string& json) {
  auto v = ParseJson(json, "test");
  EXPECT_TRUE(v.ok()) << json;
  return v.ok() ? std::move(*v) : Value();
}

std::string Id(const Value& doc, const char* key) {
  const Value* v = doc.Find(key);
  return v != nullptr && v->is_string() ? v->as_string() : std::string();
}

void SortDocs(std::vector<Value>* docs) {
  std::sort(docs->begin(), docs->end(), [](const Value& a, const Value& b) {
    return std::make_pair(Id(a, "deviceId"), Id(a, "moduleId")) <
           std::make_pair(Id(b, "deviceId"), Id(b, "moduleId"));
  });
}

struct Outcome {
  std::vector<std::string> ids;
  std::string explain;
};

// Target ids of `condition` over `table` with the VM (ids through InIdOrderByRank).
Outcome VmIds(const check::BoundCondition& c, const Table& table, bool optimize) {
  CompileOptions options;
  options.optimize = optimize;
  Outcome o;
  if (c.all) {
    for (uint32_t row : table.InIdOrderByRank(table.live()))
      o.ids.emplace_back(table.device_id(row));
    return o;
  }
  Program p = CompileFilter(c.expr.get(), table, options);
  EXPECT_EQ(p.Verify(), "");
  o.explain = p.Explain();
  index::Bitmap rows = Run(p, table);
  std::vector<uint32_t> by_rank = table.InIdOrderByRank(rows);
  EXPECT_EQ(by_rank, table.InIdOrder(rows));
  for (uint32_t row : by_rank) {
    std::string id(table.device_id(row));
    if (table.modules()) id += "/" + std::string(table.module_id(row));
    o.ids.push_back(std::move(id));
  }
  return o;
}

// Checks the VM (optimised and not) against the reference; returns the optimised EXPLAIN.
std::string Check(const std::string& text, const Table& table, std::vector<Value> docs) {
  SortDocs(&docs);
  Source source("<condition>", text);
  auto c = tools::CompileCondition(source);
  EXPECT_TRUE(c.ok()) << text;
  if (!c.ok()) return "";
  ref::Documents d;
  if (table.modules()) {
    d.modules = docs;
  } else {
    d.devices = docs;
  }
  std::vector<std::string> want = ref::TargetIds(*c, d);
  Outcome fast = VmIds(*c, table, true);
  Outcome slow = VmIds(*c, table, false);
  EXPECT_EQ(fast.ids, want) << text << "\n" << fast.explain;
  EXPECT_EQ(slow.ids, want) << text << "\n" << slow.explain;
  return fast.explain;
}

bool Has(const std::string& explain, const std::string& what) {
  return explain.find(what) != std::string::npos;
}

// ---- ids ---------------------------------------------------------------------------------------

std::vector<Value> IdFleet(size_t n) {
  std::vector<Value> docs;
  for (size_t i = 0; i < n; ++i) {
    char id[32];
    std::snprintf(id, sizeof(id), "d-%05zu", i);
    docs.push_back(Doc(std::string(R"({"deviceId":")") + id + R"(","tags":{"n":)" +
                       std::to_string(i % 7) + "}}"));
  }
  docs.push_back(Doc(R"({"deviceId":"ü-1","tags":{"n":1}})"));
  docs.push_back(Doc(R"({"deviceId":"ü-2","tags":{"n":2}})"));
  docs.push_back(Doc(R"({"deviceId":"日本-1","tags":{"n":3}})"));
  SortDocs(&docs);
  return docs;
}

const char* const kIdConditions[] = {
    "deviceId = 'd-00003'",
    "deviceId = 'nope'",
    "deviceId IN ['d-00001', 'd-00002', 'd-00001', 'missing', 'ü-2', '日本-1']",
    "deviceId IN ['d-00004', 4, null]",
    "NOT (deviceId IN ['d-00001', 'd-00002'])",
    "deviceId NIN ['d-00001', 'd-00002', 3]",
    "deviceId IN ['d-00001'] OR tags.n = 3",
    "STARTSWITH(deviceId, 'd-0001')",
    "STARTSWITH(deviceId, '')",
    "STARTSWITH(deviceId, 'zzz')",
    "STARTSWITH(deviceId, 'ü')",
    "STARTSWITH(deviceId, '日')",
    "NOT STARTSWITH(deviceId, 'd-000')",
    "STARTSWITH(deviceId, 'd-00') AND tags.n = 2",
};

TEST(VmFastPaths, IdLookupAndPrefixOverVersions) {
  std::vector<Value> docs = IdFleet(300);
  std::shared_ptr<const Table> t = Table::Build(docs, false);
  for (const char* c : kIdConditions) Check(c, *t, docs);
  EXPECT_TRUE(Has(Check(kIdConditions[2], *t, docs), "id lookup"));
  EXPECT_TRUE(Has(Check(kIdConditions[7], *t, docs), "id order range"));

  // A new version: deletions, a deleted id added again (a new row), new ids sorting anywhere
  // (order() no longer ascending), an in-place update.
  std::vector<index::Change> changes;
  auto del = [&](const std::string& id) {
    index::Change c;
    c.kind = index::Change::Kind::kDelete;
    c.device_id = id;
    changes.push_back(std::move(c));
    docs.erase(std::remove_if(docs.begin(), docs.end(),
                              [&](const Value& d) { return Id(d, "deviceId") == id; }),
               docs.end());
  };
  auto put = [&](const std::string& json) {
    index::Change c;
    c.doc = Doc(json);
    c.device_id = Id(c.doc, "deviceId");
    docs.erase(std::remove_if(docs.begin(), docs.end(),
                              [&](const Value& d) { return Id(d, "deviceId") == c.device_id; }),
               docs.end());
    docs.push_back(c.doc);
    changes.push_back(std::move(c));
  };
  del("d-00001");
  del("d-00010");
  put(R"({"deviceId":"d-00002","tags":{"n":5}})");
  put(R"({"deviceId":"d-000015","tags":{"n":1}})");
  put(R"({"deviceId":"a-first","tags":{"n":1}})");
  put(R"({"deviceId":"ü-0","tags":{"n":1}})");
  auto t2 = t->WithChanges(changes);
  ASSERT_TRUE(t2.ok());
  // Hash built on the first version and shared: the second verifies its hits and scans the tail.
  for (const char* c : kIdConditions) Check(c, **t2, docs);
  changes.clear();
  put(R"({"deviceId":"d-00001","tags":{"n":6}})");  // deleted in t2, back with a new row
  auto t3 = (*t2)->WithChanges(changes);
  ASSERT_TRUE(t3.ok());
  for (const char* c : kIdConditions) Check(c, **t3, docs);
  // The old versions still answer as before (snapshots).
  std::vector<Value> first = IdFleet(300);
  Check(kIdConditions[2], *t, first);

  // Many additions: the next lookup rebuilds the hash for the new version.
  changes.clear();
  for (size_t i = 0; i < 4200; ++i) {
    char id[32];
    std::snprintf(id, sizeof(id), "n-%05zu", i);
    put(std::string(R"({"deviceId":")") + id + R"(","tags":{"n":0}})");
  }
  auto t4 = (*t3)->WithChanges(changes);
  ASSERT_TRUE(t4.ok());
  for (const char* c : kIdConditions) Check(c, **t4, docs);
  Check("deviceId IN ['n-00000', 'n-04199', 'd-00001', 'd-00010']", **t4, docs);
}

TEST(VmFastPaths, IdPathsOfModuleTables) {
  std::vector<Value> docs;
  for (int d = 0; d < 40; ++d) {
    for (const char* m : {"$edgeAgent", "$edgeHub", "filter"}) {
      if (d % 3 == 0 && m[0] == 'f') continue;
      docs.push_back(Doc("{\"deviceId\":\"dev-" + std::to_string(d) + "\",\"moduleId\":\"" + m +
                         "\",\"properties\":{\"reported\":{\"x\":" + std::to_string(d % 5) +
                         "}}}"));
    }
  }
  SortDocs(&docs);
  std::shared_ptr<const Table> t = Table::Build(docs, true);
  EXPECT_TRUE(
      Has(Check("FROM devices.modules WHERE deviceId IN ['dev-3', 'dev-30', 'x']", *t, docs),
          "id lookup"));
  Check("FROM devices.modules WHERE deviceId = 'dev-7' AND moduleId = 'filter'", *t, docs);
  Check("FROM devices.modules WHERE NOT (deviceId IN ['dev-3'])", *t, docs);
  EXPECT_TRUE(Has(Check("FROM devices.modules WHERE STARTSWITH(deviceId, 'dev-1')", *t, docs),
                  "id order range"));
  Check("FROM devices.modules WHERE NOT STARTSWITH(deviceId, 'dev-2')", *t, docs);
}

// A twin with a case variant of deviceId: the path has two candidates, so neither the id hash
// nor the id order may answer it.
TEST(VmFastPaths, CaseVariantOfDeviceIdIsNotTheIdPath) {
  std::vector<Value> docs = IdFleet(20);
  docs.push_back(Doc(R"({"deviceId":"x-1","DeviceId":"d-00003","tags":{"n":1}})"));
  SortDocs(&docs);
  std::shared_ptr<const Table> t = Table::Build(docs, false);
  for (const char* c : kIdConditions) Check(c, *t, docs);
  Check("DEVICEID = 'd-00003'", *t, docs);
  Check("STARTSWITH(DeviceId, 'd-0000')", *t, docs);
  EXPECT_FALSE(Has(Check("STARTSWITH(DeviceId, 'd-0000')", *t, docs), "id order range"));
}

// ---- numbers and residuals ---------------------------------------------------------------------

// A fleet with: `few` (10 distinct numbers: postings), `many` (500 distinct over 3000 rows:
// postings, ranges wider than 64 of them scan), `unique` (all distinct: no postings), mixed
// kinds at the same paths, a case variant (`Few`), 0 and -0, strings with case variants of
// their letters, arrays and objects, and twins without the paths.
std::vector<Value> NumberFleet() {
  std::mt19937 rng(11);
  std::vector<Value> docs;
  const char* const kinds[] = {"Camera", "camera", "CAMERA", "meter", "Meter", "thermostat"};
  for (int i = 0; i < 3000; ++i) {
    std::string tags = "\"few\":" + std::to_string(rng() % 10);
    tags += ",\"many\":" + std::to_string(static_cast<int>(rng() % 500) - 100) + ".5";
    tags += ",\"unique\":" + std::to_string(i * 3 + 1);
    tags += std::string(",\"type\":\"") + kinds[rng() % 6] + "\"";
    int r = static_cast<int>(rng() % 20);
    if (r == 0) tags += ",\"mixed\":\"12\"";
    if (r == 1) tags += ",\"mixed\":true";
    if (r == 2) tags += ",\"mixed\":[1,2]";
    if (r == 3) tags += ",\"mixed\":{\"a\":1}";
    if (r == 4) tags += ",\"mixed\":null";
    if (r == 5) tags += ",\"mixed\":-0";
    if (r == 6) tags += ",\"mixed\":0";
    if (r >= 7 && r < 15) tags += ",\"mixed\":" + std::to_string(r * 3 - 30);
    if (r == 15) tags += ",\"Few\":4";  // case variant of `few`
    if (r == 16) tags = "\"other\":1";  // no paths at all
    char id[32];
    std::snprintf(id, sizeof(id), "n-%05d", i);
    docs.push_back(Doc(std::string(R"({"deviceId":")") + id + R"(","tags":{)" + tags + "}}"));
  }
  SortDocs(&docs);
  return docs;
}

TEST(VmFastPaths, NumberRanges) {
  std::vector<Value> docs = NumberFleet();
  std::shared_ptr<const Table> t = Table::Build(docs, false);
  const char* const ranges[] = {
      "tags.few >= 2 AND tags.few < 5",
      "tags.few > 2 AND tags.few <= 5",
      "tags.FEW >= 2 AND tags.FEW < 5",  // case variants: two candidates
      "tags.many >= -50 AND tags.many < 300",
      "tags.many > 10.5 AND tags.many <= 399.5",
      "tags.many >= 0 AND tags.many < 1",
      "tags.many >= 300 AND tags.many < 10",  // empty interval
      "NOT (tags.many >= -50 AND tags.many < 300)",
      "tags.unique >= 100 AND tags.unique < 5000",
      "NOT (tags.unique > 100 AND tags.unique <= 5000)",
      "tags.mixed >= -5 AND tags.mixed <= 15",
      "NOT (tags.mixed > 0 AND tags.mixed < 100)",
      "-1 < tags.mixed AND 100 >= tags.mixed",
      "tags.few >= 2 AND tags.few < 5 AND tags.many > 0 AND tags.many < 200",
      "tags.few >= 2 AND tags.many < 5",  // different paths: not merged
      "tags.many >= -50 AND tags.many < 300 OR tags.few = 1",
      "tags.nothing >= 1 AND tags.nothing < 3",
      "tags.many < 300",
      "tags.many >= -50",
      "tags.many != 20.5",
      "NOT (tags.many <= 250.5)",
  };
  for (const char* c : ranges) Check(c, *t, docs);
  EXPECT_TRUE(Has(Check(ranges[3], *t, docs), "NumberRange"));
  EXPECT_TRUE(Has(Check(ranges[8], *t, docs), "NumberRange"));
  EXPECT_FALSE(Has(Check(ranges[14], *t, docs), "NumberRange"));
}

// A column of 70,000 numbers with 20,000 distinct values (no postings; equal values straddle
// the bins): ranges go through the number bins (the VM's cache), single comparisons too.
TEST(VmFastPaths, NumberRangesThroughBins) {
  std::vector<Value> docs;
  for (int i = 0; i < 70000; ++i) {
    char id[32];
    std::snprintf(id, sizeof(id), "b-%06d", i);
    std::string t = std::to_string((i * 7919) % 20000) + "e-1";
    if (i % 97 == 0) t = "\"12\"";  // a string
    if (i % 101 == 0) t = "-0";     // -0 beside 0
    std::string tags = i % 89 == 0 ? "\"u\":1" : "\"t\":" + t;
    docs.push_back(Doc(std::string(R"({"deviceId":")") + id + R"(","tags":{)" + tags + "}}"));
  }
  SortDocs(&docs);
  std::shared_ptr<const Table> t = Table::Build(docs, false);
  const char* const conditions[] = {
      "tags.t >= 20 AND tags.t < 25",
      "tags.t > 20 AND tags.t <= 25",
      "tags.t > -1 AND tags.t < 0.5",
      "tags.t >= 0 AND tags.t <= 0",
      "NOT (tags.t >= 100 AND tags.t < 1500)",
      "tags.t >= 1999.9 AND tags.t < 5000",
      "tags.t >= 5 AND tags.t < 1",
      "tags.t < 3.3",
      "tags.t >= 1000",
      "tags.t = 1234.5",
      "tags.t != 1234.5",
      "NOT (tags.t > 7)",
  };
  for (const char* c : conditions) Check(c, *t, docs);
}

TEST(VmFastPaths, ResidualsOfOnePathByValue) {
  std::vector<Value> docs = NumberFleet();
  std::shared_ptr<const Table> t = Table::Build(docs, false);
  const char* const residuals[] = {
      "LOWER(tags.type) = 'camera'",
      "NOT (LOWER(tags.type) = 'camera')",
      "UPPER(tags.TYPE) = 'METER'",
      "LENGTH(tags.type) > 5",
      "tags.few * 2 > 7",
      "NOT (tags.few * 2 > 7)",
      "tags.Few * 2 > 7",
      "tags.many * 2 + 1 < 100",
      "tags.mixed * 2 > 10",
      "LENGTH(tags.mixed) = 2",
      "POWER(tags.mixed, -1) > 0",  // -0 and 0 share a posting and differ here
      "NOT (POWER(tags.mixed, -1) > 0)",
      "IS_DEFINED(tags.mixed) = false",  // true where the path is missing
      "IS_STRING(tags.mixed) = IS_NUMBER(tags.mixed)",
      "ABS(tags.many) = tags.many",
      "tags.few * 2 > 7 AND tags.many > 0",
      "tags.few * 2 > 7 OR LOWER(tags.type) = 'meter'",
      "tags.unique * 2 > 100",       // no postings: row by row
      "tags.few + tags.many > 100",  // two paths: row by row
  };
  for (const char* c : residuals) Check(c, *t, docs);
  EXPECT_TRUE(Has(Check(residuals[0], *t, docs), "once per distinct value"));
}

// ---- order -------------------------------------------------------------------------------------

TEST(VmFastPaths, InIdOrderByRankMatchesInIdOrder) {
  std::vector<Value> docs = IdFleet(500);
  std::shared_ptr<const Table> t = Table::Build(docs, false);
  std::vector<index::Change> changes;
  for (int i = 0; i < 200; ++i) {
    index::Change c;
    c.doc = Doc("{\"deviceId\":\"m-" + std::to_string((i * 7919) % 1000) + "\"}");
    c.device_id = Id(c.doc, "deviceId");
    changes.push_back(std::move(c));
  }
  index::Change del;
  del.kind = index::Change::Kind::kDelete;
  del.device_id = "d-00042";
  changes.push_back(del);
  auto t2 = t->WithChanges(changes);
  ASSERT_TRUE(t2.ok());
  for (const Table* table : {t.get(), t2->get()}) {
    std::mt19937 rng(5);
    for (int density : {0, 1, 3, 50, 100}) {  // percent of live rows
      index::Bitmap rows;
      table->live().ForEach([&](uint32_t row) {
        if (static_cast<int>(rng() % 100) < density) rows.Add(row);
      });
      EXPECT_EQ(table->InIdOrderByRank(rows), table->InIdOrder(rows)) << density;
    }
  }
  // A deleted row (not in order()): the string sort places it.
  std::optional<uint32_t> dead = t->FindRow("d-00042");
  ASSERT_TRUE(dead.has_value());
  index::Bitmap with_dead = (*t2)->live();
  with_dead.Add(*dead);
  EXPECT_EQ((*t2)->InIdOrderByRank(with_dead), (*t2)->InIdOrder(with_dead));
  EXPECT_EQ((*t2)->InIdOrderByRank(with_dead).size(), (*t2)->live_count() + 1);
}

// ---- GROUP BY ----------------------------------------------------------------------------------

// Grouping by dictionary code and kind (one column) against the reference, with every kind of
// key, 0 and -0, 1 and 1.0, a case variant (two columns: the canonical-key path) and modules.
TEST(VmFastPaths, GroupByCodes) {
  std::string text;
  const char* const values[] = {"\"a\"",     "\"b\"",     "\"A\"",  "1",    "1.0",
                                "0",         "-0",        "null",   "true", "false",
                                "[1,\"a\"]", "{\"k\":1}", "\"43\"", "43"};
  for (int i = 0; i < 200; ++i) {
    std::string dev = "g-" + std::to_string(1000 - i);  // ids not in arrival order
    std::string tags;
    if (i % 15 != 14) tags = std::string("\"k\":") + values[(i * 7) % 14];
    if (i % 23 == 5) tags += std::string(tags.empty() ? "" : ",") + "\"K\":\"variant\"";
    text += "{\"deviceId\":\"" + dev + "\",\"tags\":{" + tags + "},\"properties\":{\"reported\":{" +
            "\"n\":" + std::to_string(i % 4) + "}}}\n";
    if (i % 9 == 0) {
      text += "{\"deviceId\":\"" + dev + "\",\"moduleId\":\"m\",\"tags\":{\"k\":" + values[i % 14] +
              "}}\n";
    }
  }
  auto twins = ReadTwins(text, "group fleet");
  ASSERT_TRUE(twins.ok()) << twins.error().message;
  index::Fleet fleet(*twins);
  index::Snapshot snap = fleet.snapshot();
  ref::Documents docs{twins->devices, twins->modules, {}};
  const char* const queries[] = {
      "SELECT tags.k AS k, COUNT() AS n FROM devices GROUP BY tags.k",
      ("SELECT tags.k, COUNT() AS n, SUM(properties.reported.n) AS s FROM devices "
       "WHERE properties.reported.n > 0 GROUP BY tags.k"),
      "SELECT tags.K AS k, COUNT() AS n FROM devices GROUP BY tags.K",  // two candidates
      "SELECT tags.k AS k, COUNT() AS n FROM devices.modules GROUP BY tags.k",
      "SELECT tags.nothing AS k, COUNT() AS n FROM devices GROUP BY tags.nothing",
      "SELECT properties.reported.n AS n, COUNT() AS c FROM devices GROUP BY properties.reported.n",
  };
  for (const char* q : queries) {
    Source source("<query>", q);
    auto bound = tools::CompileQuery(source);
    ASSERT_TRUE(bound.ok()) << q;
    std::string want, got;
    for (const Value& v : ref::AllRows(*bound, docs)) want += ToJson(v) + "\n";
    for (const Value& v : AllRows(*bound, snap)) got += ToJson(v) + "\n";
    EXPECT_EQ(got, want) << q;
    EXPECT_NE(want, "") << q;
  }
}

// ---- binder ------------------------------------------------------------------------------------

TEST(VmFastPaths, InListDeduplication) {
  Source source("<condition>",
                "tags.x IN [1, 1.0, -0, 0, 'a', 'a', 'A', [1], [1], [1, 2], [[1], 'b'], "
                "[[1], 'b'], true, false, true, null, null, 2]");
  auto c = tools::CompileCondition(source);
  ASSERT_TRUE(c.ok()) << c.diagnostics()[0].message;
  const check::BoundExpr& in = *c->expr;
  ASSERT_EQ(in.kind, check::BoundKind::kIn);
  std::string got;
  for (const Value& v : in.value.as_array()) got += ToJson(v) + " ";
  EXPECT_EQ(got, "1 0 \"a\" \"A\" [1] [1,2] [[1],\"b\"] true false null 2 ");
}

}  // namespace
}  // namespace twinq::vm
