// Shadow-model tests of the columnar index (DESIGN.md "The fast path": the raw JSON documents are
// the oracle of the index). CheckTableAgainstDocuments compares EVERY column of a table with the
// documents it was built from; the tests run it over generated and hand-written fleets, after
// every batch of seeded random update sequences (against an independent std::map shadow model),
// on old snapshots (isolation), after failing batches (atomicity) and after save/load. Corrupted
// index files (every prefix, byte flips, and edits with a re-computed checksum) must be refused.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/common/json_reader.h"
#include "engine/common/value.h"
#include "index/column.h"
#include "index/fleet.h"
#include "index/fleet_gen.h"
#include "index/table.h"
#include "index/twin_patch.h"

namespace twinq::index {

// Compares every column of `table` with `docs`, the documents it should hold, in (deviceId,
// moduleId) order. See the checks in the body; returns all disagreements (up to a limit).
// `every_value_held`: every dictionary string and every distinct number is held by some row
// (false only for columns read from files written before merges dropped unheld values).
::testing::AssertionResult CheckTableAgainstDocuments(const Table& table,
                                                      const std::vector<Value>& docs,
                                                      bool every_value_held = true);

namespace {

// Path order independent of the index's catalog keys: step by step, names by bytes.
struct PathLess {
  bool operator()(const ColumnPath& a, const ColumnPath& b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                        [](const Step& x, const Step& y) {
                                          if (x.is_index != y.is_index)
                                            return x.is_index < y.is_index;
                                          return x.is_index ? x.index < y.index : x.name < y.name;
                                        });
  }
};

ColumnPath Lowered(const ColumnPath& p) {
  ColumnPath out = p;
  for (Step& s : out) {
    if (!s.is_index) s.name = ToLowerAscii(s.name);
  }
  return out;
}

ColumnPath Uppered(const ColumnPath& p) {
  ColumnPath out = p;
  for (Step& s : out) {
    for (char& c : s.name) {
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
  }
  return out;
}

std::string IdOf(const Value& doc, const char* key) {
  const Value* v = doc.Find(key);
  return v != nullptr && v->is_string() ? v->as_string() : std::string();
}

Value EntryValue(const FlatEntry& e) {
  switch (e.kind) {
    case Kind::kNull:
      return Value::Null();
    case Kind::kFalse:
      return Value::Bool(false);
    case Kind::kTrue:
      return Value::Bool(true);
    case Kind::kNumber:
      return Value::Number(e.number);
    case Kind::kString:
      return Value::String(e.string);
    case Kind::kArray:
      return Value::MakeArray({});
    case Kind::kObject:
      return Value::MakeObject({});
  }
  return Value();
}

std::string Rows(const Bitmap& b) {
  std::vector<uint32_t> v = b.ToVector();
  if (v.size() > 12) {
    v.resize(12);
    return fmt::format("[{}, ...] ({} rows)", fmt::join(v, ", "), b.Cardinality());
  }
  return fmt::format("[{}]", fmt::join(v, ", "));
}

// The entries of one path, sorted by row.
struct ExpectedColumn {
  ColumnPath path;
  std::vector<std::pair<uint32_t, const FlatEntry*>> rows;
  const FlatEntry* Find(uint32_t row) const {
    auto it = std::lower_bound(rows.begin(), rows.end(),
                               std::make_pair(row, static_cast<const FlatEntry*>(nullptr)));
    return it != rows.end() && it->first == row ? it->second : nullptr;
  }
};

// An unambiguous key of a path, independent of the index's own catalog keys.
std::string OracleKey(const ColumnPath& path) {
  std::string out;
  for (const Step& s : path) {
    out += s.is_index ? fmt::format("i{};", s.index) : fmt::format("n{}:", s.name.size()) + s.name;
  }
  return out;
}

}  // namespace

::testing::AssertionResult CheckTableAgainstDocuments(const Table& table,
                                                      const std::vector<Value>& docs,
                                                      bool every_value_held) {
  std::vector<std::string> errors;
  size_t error_count = 0;
  auto fail = [&](std::string what) {
    if (++error_count <= 30) errors.push_back(std::move(what));
  };
  const bool modules = table.modules();
  auto name = [&](uint32_t row) {
    return fmt::format("row {} ({}{}{})", row, table.device_id(row), modules ? "/" : "",
                       table.module_id(row));
  };

  // The input: documents in id order with unique keys.
  for (size_t i = 1; i < docs.size(); ++i) {
    auto a = std::make_pair(IdOf(docs[i - 1], "deviceId"), IdOf(docs[i - 1], "moduleId"));
    auto b = std::make_pair(IdOf(docs[i], "deviceId"), IdOf(docs[i], "moduleId"));
    if (!(a < b))
      fail(fmt::format("test input: documents {} and {} are not in id order", i - 1, i));
  }

  // Rows: order() is exactly the live rows, sorted by (deviceId, moduleId), one per document.
  const std::vector<uint32_t>& order = table.order();
  if (order.size() != docs.size() || table.live_count() != docs.size()) {
    fail(fmt::format("{} documents, but order() has {} rows and live() {}", docs.size(),
                     order.size(), table.live_count()));
  }
  std::vector<uint32_t> sorted_order = order;
  std::sort(sorted_order.begin(), sorted_order.end());
  if (std::adjacent_find(sorted_order.begin(), sorted_order.end()) != sorted_order.end()) {
    fail("order() repeats a row");
  }
  if (!(Bitmap::Of(sorted_order) == table.live())) {
    fail(fmt::format("order() {} is not live() {}", Rows(Bitmap::Of(sorted_order)),
                     Rows(table.live())));
  }
  if (!table.live().Empty() && table.live().ToVector().back() >= table.row_count()) {
    fail("a live row is beyond row_count()");
  }
  std::vector<uint32_t> doc_row(docs.size(), UINT32_MAX);
  for (size_t i = 0; i < std::min(order.size(), docs.size()); ++i) {
    uint32_t row = order[i];
    doc_row[i] = row;
    const Value& doc = docs[i];
    std::string device = IdOf(doc, "deviceId");
    std::string module = modules ? IdOf(doc, "moduleId") : std::string();
    if (table.device_id(row) != device || table.module_id(row) != module) {
      fail(fmt::format("order()[{}] is {}, expected {}/{}", i, name(row), device, module));
    }
    if (i > 0) {
      uint32_t prev = order[i - 1];
      auto a = std::make_pair(table.device_id(prev), table.module_id(prev));
      auto b = std::make_pair(table.device_id(row), table.module_id(row));
      if (!(a < b))
        fail(fmt::format("order() is not sorted at {}: {} then {}", i, name(prev), name(row)));
    }
    if (std::string(table.doc_json(row)) != ToJson(doc)) {
      fail(fmt::format("{}: doc_json {} != {}", name(row), table.doc_json(row), ToJson(doc)));
    }
    if (!(table.Document(row) == doc)) fail(fmt::format("{}: Document() differs", name(row)));
    std::optional<uint32_t> found = table.FindRow(device, module);
    if (!found || *found != row)
      fail(fmt::format("FindRow({}, {}) does not give {}", device, module, row));
  }
  for (uint32_t row = 0; row < table.row_count(); ++row) {
    if (table.live().Contains(row)) continue;
    if (!table.doc_json(row).empty()) fail(fmt::format("deleted {} keeps a document", name(row)));
    std::optional<uint32_t> found = table.FindRow(table.device_id(row), table.module_id(row));
    if (found && *found == row) fail(fmt::format("FindRow finds deleted {}", name(row)));
  }

  // What every column should hold, from the documents alone.
  std::vector<std::vector<FlatEntry>> flat(docs.size());
  std::unordered_map<std::string, ExpectedColumn> expected;
  for (size_t i = 0; i < docs.size(); ++i) {
    Flatten(docs[i], &flat[i]);
    if (doc_row[i] == UINT32_MAX) continue;
    for (const FlatEntry& e : flat[i]) {
      ExpectedColumn& exp = expected[OracleKey(e.path)];
      exp.path = e.path;
      exp.rows.emplace_back(doc_row[i], &e);
    }
  }
  for (auto& [key, exp] : expected) {
    std::sort(exp.rows.begin(), exp.rows.end());
    for (size_t i = 1; i < exp.rows.size(); ++i) {
      if (exp.rows[i - 1].first == exp.rows[i].first) {
        fail(fmt::format("a document flattens to {} twice", PathDisplay(exp.path)));
      }
    }
  }

  // The catalog: one column per path, FindExact finds it, FindFolded lists the case variants.
  const auto& columns = table.columns();
  std::map<ColumnPath, uint32_t, PathLess> by_path;
  std::map<ColumnPath, std::vector<uint32_t>, PathLess> by_folded;
  for (uint32_t id = 0; id < columns.size(); ++id) {
    const ColumnPath& path = columns[id]->path();
    if (path.empty()) fail(fmt::format("column {} has an empty path", id));
    if (!by_path.emplace(path, id).second) {
      fail(
          fmt::format("columns {} and {} share the path {}", by_path[path], id, PathDisplay(path)));
    }
    by_folded[Lowered(path)].push_back(id);
    if (table.column(id) != columns[id].get())
      fail(fmt::format("column({}) is not columns()[{}]", id, id));
  }
  for (const auto& [key, exp] : expected) {
    const ColumnPath& path = exp.path;
    const Column* c = table.FindExact(path);
    if (c == nullptr) {
      fail(fmt::format("no column for {} (held by {} rows)", PathDisplay(path), exp.rows.size()));
    } else if (!(c->path() == path)) {
      fail(fmt::format("FindExact({}) gives the column of {}", PathDisplay(path),
                       PathDisplay(c->path())));
    }
  }
  for (auto& [folded, ids] : by_folded) {
    std::sort(ids.begin(), ids.end(), [&](uint32_t a, uint32_t b) {
      return PathLess()(columns[a]->path(), columns[b]->path());
    });
    const ColumnPath& any = columns[ids.front()]->path();
    for (const ColumnPath& probe : {any, folded, Uppered(any)}) {
      const std::vector<uint32_t>* got = table.FindFolded(probe);
      if (got == nullptr || *got != ids) {
        fail(fmt::format("FindFolded({}) gives [{}], expected [{}]", PathDisplay(probe),
                         got ? fmt::format("{}", fmt::join(*got, ", ")) : "null",
                         fmt::join(ids, ", ")));
      }
    }
  }

  // Every column against the documents.
  const size_t value_at_budget = 2'000'000;
  const bool check_absent =
      static_cast<size_t>(table.row_count()) * columns.size() <= value_at_budget;
  for (uint32_t id = 0; id < columns.size(); ++id) {
    const Column& c = *columns[id];
    const std::string where = fmt::format("column {}", PathDisplay(c.path()));
    if (table.FindExact(c.path()) != &c) fail(where + ": FindExact does not find it");
    static const ExpectedColumn kNone;
    auto eit = expected.find(OracleKey(c.path()));
    const ExpectedColumn& exp = eit == expected.end() ? kNone : eit->second;

    std::vector<uint32_t> present_rows;
    std::array<std::vector<uint32_t>, kKindCount> kind_rows;
    for (const auto& [row, e] : exp.rows) {
      present_rows.push_back(row);
      kind_rows[static_cast<size_t>(e->kind)].push_back(row);
    }
    if (!(c.present() == Bitmap::Of(present_rows))) {
      fail(fmt::format("{}: present() {} but the documents hold it in {}", where, Rows(c.present()),
                       Rows(Bitmap::Of(present_rows))));
    }
    if (!(c.present() - table.live()).Empty()) {
      fail(fmt::format("{}: present in rows that are not live: {}", where,
                       Rows(c.present() - table.live())));
    }
    for (size_t k = 0; k < kKindCount; ++k) {
      const Bitmap& got = c.rows(static_cast<Kind>(k));
      if (!(got == Bitmap::Of(kind_rows[k]))) {
        fail(fmt::format("{}: rows({}) {} but the documents have {}", where,
                         KindName(static_cast<Kind>(k)), Rows(got),
                         Rows(Bitmap::Of(kind_rows[k]))));
      }
      if (c.stats().kind_counts[k] != got.Cardinality()) {
        fail(fmt::format("{}: stats count of {} is {}, rows() has {}", where,
                         KindName(static_cast<Kind>(k)), c.stats().kind_counts[k],
                         got.Cardinality()));
      }
    }
    const Bitmap& number_rows = c.rows(Kind::kNumber);
    const Bitmap& string_rows = c.rows(Kind::kString);
    const Bitmap& array_rows = c.rows(Kind::kArray);
    if (c.numbers().size() != number_rows.Cardinality() ||
        c.codes().size() != string_rows.Cardinality() ||
        c.array_lengths().size() != array_rows.Cardinality()) {
      fail(fmt::format(
          "{}: {} numbers for {} number rows, {} codes for {} string rows, {} lengths for {} "
          "array rows",
          where, c.numbers().size(), number_rows.Cardinality(), c.codes().size(),
          string_rows.Cardinality(), c.array_lengths().size(), array_rows.Cardinality()));
      continue;  // the positional checks below would read out of range
    }
    // Native values, positionally (the i-th value belongs to the i-th row of its kind bitmap).
    size_t j = 0;
    number_rows.ForEach([&](uint32_t row) {
      const FlatEntry* e = exp.Find(row);
      if (e != nullptr && e->kind == Kind::kNumber && e->number != c.numbers()[j]) {
        fail(fmt::format("{}: {} holds number {}, the document {}", where, name(row),
                         c.numbers()[j], e->number));
      }
      ++j;
    });
    j = 0;
    string_rows.ForEach([&](uint32_t row) {
      uint32_t code = c.codes()[j++];
      if (code >= c.dictionary().size()) {
        fail(fmt::format("{}: {} has code {} beyond the dictionary ({})", where, name(row), code,
                         c.dictionary().size()));
        return;
      }
      const FlatEntry* e = exp.Find(row);
      if (e != nullptr && e->kind == Kind::kString && c.dictionary().String(code) != e->string) {
        fail(fmt::format("{}: {} holds string \"{}\", the document \"{}\"", where, name(row),
                         c.dictionary().String(code), e->string));
      }
    });
    j = 0;
    array_rows.ForEach([&](uint32_t row) {
      const FlatEntry* e = exp.Find(row);
      if (e != nullptr && e->kind == Kind::kArray && e->length != c.array_lengths()[j]) {
        fail(fmt::format("{}: {} holds an array of {}, the document {}", where, name(row),
                         c.array_lengths()[j], e->length));
      }
      ++j;
    });
    // ValueAt and KindAt for every row that holds the path, and undefined elsewhere.
    for (const auto& [row, e] : exp.rows) {
      Value got = c.ValueAt(row);
      if (!(got == EntryValue(*e))) {
        fail(fmt::format("{}: ValueAt({}) = {}, the document has {}", where, name(row), ToJson(got),
                         ToJson(EntryValue(*e))));
      }
      bool present = false;
      if (c.KindAt(row, &present) != e->kind || !present) {
        fail(fmt::format("{}: KindAt({}) is not {}", where, name(row), KindName(e->kind)));
      }
    }
    if (check_absent) {
      for (uint32_t row = 0; row < table.row_count() + 2; ++row) {
        // Deleted rows, the rows past the end and a sample of the others.
        if (exp.Find(row) != nullptr || (table.live().Contains(row) && row % 5 != 0)) continue;
        bool present = true;
        c.KindAt(row, &present);
        if (present || !c.ValueAt(row).is_undefined()) {
          fail(fmt::format("{}: row {} has a value but its document does not hold the path", where,
                           row));
        }
      }
    }
    // Dictionary: sorted, unique; string postings are the rows holding each string.
    std::vector<std::string> strings;
    for (uint32_t i = 0; i < c.dictionary().size(); ++i)
      strings.push_back(c.dictionary().String(i));
    for (size_t i = 1; i < strings.size(); ++i) {
      if (!(strings[i - 1] < strings[i])) {
        fail(fmt::format("{}: dictionary not sorted and unique at {}: \"{}\", \"{}\"", where, i,
                         strings[i - 1], strings[i]));
      }
    }
    for (size_t i = 0; i < strings.size(); ++i) {
      if (c.dictionary().Find(strings[i]) != static_cast<int64_t>(i)) {
        fail(fmt::format("{}: dictionary Find(\"{}\") is not {}", where, strings[i], i));
      }
    }
    // Every string of the dictionary is held by some row (a merge drops the others).
    if (every_value_held) {
      std::vector<bool> held(strings.size(), false);
      for (const auto& [row, e] : exp.rows) {
        if (e->kind != Kind::kString) continue;
        int64_t code = c.dictionary().Find(e->string);
        if (code >= 0) held[static_cast<size_t>(code)] = true;
      }
      for (size_t i = 0; i < strings.size(); ++i) {
        if (!held[i])
          fail(fmt::format("{}: no row holds \"{}\" of the dictionary", where, strings[i]));
      }
    }
    if (c.has_string_postings()) {
      std::vector<std::vector<uint32_t>> want(strings.size());
      for (const auto& [row, e] : exp.rows) {
        if (e->kind != Kind::kString) continue;
        int64_t code = c.dictionary().Find(e->string);
        if (code < 0) {
          fail(fmt::format("{}: \"{}\" of {} is not in the dictionary", where, e->string,
                           name(row)));
        } else {
          want[code].push_back(row);
        }
      }
      for (uint32_t code = 0; code < strings.size(); ++code) {
        if (!(c.string_posting(code) == Bitmap::Of(want[code]))) {
          fail(fmt::format("{}: posting of \"{}\" is {}, the documents hold it in {}", where,
                           strings[code], Rows(c.string_posting(code)),
                           Rows(Bitmap::Of(want[code]))));
        }
      }
    }
    // Number postings.
    const std::vector<double>& distinct = c.distinct_numbers();
    const std::vector<Bitmap>& postings = c.number_postings();
    if (distinct.size() != postings.size()) {
      fail(fmt::format("{}: {} distinct numbers but {} postings", where, distinct.size(),
                       postings.size()));
    } else if (!postings.empty()) {
      for (size_t i = 1; i < distinct.size(); ++i) {
        if (!(distinct[i - 1] < distinct[i]))
          fail(fmt::format("{}: distinct numbers not sorted", where));
      }
      std::vector<std::vector<uint32_t>> want(distinct.size());
      for (const auto& [row, e] : exp.rows) {
        if (e->kind != Kind::kNumber) continue;
        auto it = std::lower_bound(distinct.begin(), distinct.end(), e->number);
        if (it == distinct.end() || *it != e->number) {
          fail(fmt::format("{}: {} of {} has no number posting", where, e->number, name(row)));
        } else {
          want[it - distinct.begin()].push_back(row);
        }
      }
      for (size_t i = 0; i < distinct.size(); ++i) {
        if (want[i].empty() && every_value_held) {
          fail(fmt::format("{}: no row holds the number {}", where, distinct[i]));
        }
        if (!(postings[i] == Bitmap::Of(want[i]))) {
          fail(fmt::format("{}: posting of {} is {}, the documents hold it in {}", where,
                           distinct[i], Rows(postings[i]), Rows(Bitmap::Of(want[i]))));
        }
      }
    }
    if (!c.numbers().empty()) {
      auto [mn, mx] = std::minmax_element(c.numbers().begin(), c.numbers().end());
      if (c.stats().min_number != *mn || c.stats().max_number != *mx) {
        fail(fmt::format("{}: stats range [{}, {}], numbers [{}, {}]", where, c.stats().min_number,
                         c.stats().max_number, *mn, *mx));
      }
    }
  }

  if (error_count == 0) return ::testing::AssertionSuccess();
  ::testing::AssertionResult r = ::testing::AssertionFailure();
  r << (modules ? "module" : "device") << " table disagrees with its " << docs.size()
    << " documents in " << error_count << " way(s):";
  for (const std::string& e : errors) r << "\n  " << e;
  if (error_count > errors.size()) r << "\n  ...";
  return r;
}

namespace {

constexpr char kNow[] = "2026-11-26T18:00:00.0000000Z";

Value J(std::string_view text) {
  Expected<Value> v = ParseJson(text, "test");
  if (!v.ok()) {
    ADD_FAILURE() << v.error().message;
    return Value();
  }
  return std::move(v).value();
}

TwinSet Twins(std::string_view text) {
  Expected<TwinSet> t = ReadTwins(text, "test");
  if (!t.ok()) {
    ADD_FAILURE() << t.error().message;
    return TwinSet();
  }
  return std::move(t).value();
}

TwinSet Split(const std::vector<Value>& docs) {
  TwinSet t;
  for (const Value& d : docs) (d.Find("moduleId") ? t.modules : t.devices).push_back(d);
  return t;
}

::testing::AssertionResult CheckSnapshot(const Snapshot& s, const TwinSet& twins,
                                         bool every_value_held = true) {
  ::testing::AssertionResult d =
      CheckTableAgainstDocuments(s.devices(), twins.devices, every_value_held);
  if (!d) return d;
  return CheckTableAgainstDocuments(s.modules(), twins.modules, every_value_held);
}

// ---- hand-written and generated fleets -------------------------------------------------------

// Every JSON type, nesting, empty containers, null, case variants, odd keys, unicode, and the
// same path holding different types in different twins.
constexpr char kHandWritten[] = R"(
{"deviceId":"a","tags":{"s":"x","n":1.5,"i":-3,"t":true,"f":false,"z":null,"o":{},"arr":[],"big":4503599627370495,"neg":-0.25,"tiny":1e-7,"huge":1e300,"x":1}}
{"deviceId":"b","tags":{"floor":1,"Floor":"2","FLOOR":{"x":1,"X":[true]},"nested":[[1,[2,[3]]],{"a":[{"b":null},{}]},[],{}],"x":"1"},"properties":{"desired":{"$metadata":{"$lastUpdated":"2024-01-01T00:00:00.0000000Z"},"$version":1},"reported":{}}}
{"deviceId":"c","tags":{"a.b":1,"with space":2,"$dollar":3,"#hash":4,"":5,"[[x]]":6,"tab\t":7,"quote\"":8,"back\\slash":9,"température":"é","日本":"東京","emoji":"😀","nul\u0000":"\u0000","x":{"y":{"z":[null]}}}}
{"deviceId":"C","tags":{"floor":"3","x":[1,"2",null,{"x":1},[]]}}
{"deviceId":"dev with spaces/and:odd","tags":{"x":null}}
{"deviceId":"é-device","tags":{"floor":"1","x":false},"Tags":{"floor":0}}
{"deviceId":"e","tags":{"x":true,"FLOOR":5,"Floor":{"y":2}},"capabilities":{"iotEdge":true}}
{"deviceId":"f"}
{"deviceId":"b","moduleId":"$edgeAgent","properties":{"reported":{"modules":{"m":{"status":"running"}}}}}
{"deviceId":"b","moduleId":"m","tags":{"x":1}}
{"deviceId":"b","moduleId":"M","tags":{"X":"1"}}
{"deviceId":"zzz-orphan","moduleId":"é","tags":[1,2]}
)";

TEST(IndexOracleTest, HandWrittenFleetAgrees) {
  TwinSet twins = Twins(kHandWritten);
  ASSERT_EQ(twins.devices.size(), 8u);
  ASSERT_EQ(twins.modules.size(), 4u);
  EXPECT_TRUE(CheckTableAgainstDocuments(*Table::Build(twins.devices, false), twins.devices));
  EXPECT_TRUE(CheckTableAgainstDocuments(*Table::Build(twins.modules, true), twins.modules));
  Fleet fleet(twins);
  EXPECT_TRUE(CheckSnapshot(fleet.snapshot(), twins));
  // Spot checks that the oracle itself sees what it should.
  auto table = Table::Build(twins.devices, false);
  ColumnPath floor = {Step{false, "tags", 0}, Step{false, "floor", 0}};
  const std::vector<uint32_t>* variants = table->FindFolded(floor);
  ASSERT_NE(variants, nullptr);
  // Tags.floor, tags.FLOOR, tags.Floor, tags.floor: sorted by exact spelling, step by step.
  ASSERT_EQ(variants->size(), 4u);
  EXPECT_EQ(PathDisplay(table->column((*variants)[0])->path()), "Tags.floor");
  EXPECT_EQ(PathDisplay(table->column((*variants)[1])->path()), "tags.FLOOR");
  EXPECT_EQ(PathDisplay(table->column((*variants)[2])->path()), "tags.Floor");
  EXPECT_EQ(PathDisplay(table->column((*variants)[3])->path()), "tags.floor");
}

TEST(IndexOracleTest, UnsortedInputIsOrderedById) {
  // Table::Build sorts rows that do not arrive in id order; order() must follow ids.
  TwinSet twins = Twins(kHandWritten);
  std::vector<Value> reversed(twins.devices.rbegin(), twins.devices.rend());
  auto table = Table::Build(reversed, false);
  EXPECT_TRUE(CheckTableAgainstDocuments(*table, twins.devices));
}

TEST(IndexOracleTest, ControlCharactersInKeysDoNotMergePaths) {
  // Keys may hold any character, including the ones an implementation might use to separate
  // path steps: {"a\u001fb": 1} and {"a": {"b": 2}} are two different paths, so are "x\u001e0"
  // and x[0].
  TwinSet twins =
      Twins(R"({"deviceId":"a","tags":{"a\u001fb":1,"a":{"b":2},"x\u001e0":3,"x":[4],"A\u001fb":5}}
{"deviceId":"b","tags":{"a":{"b":"s"},"x\u001e0":"t"}})");
  EXPECT_TRUE(CheckTableAgainstDocuments(*Table::Build(twins.devices, false), twins.devices));
  Fleet fleet(twins);
  ASSERT_TRUE(fleet.Patch("b", "", J(R"({"tags":{"a":{"b":7}}})"), "*", kNow).ok());
  Snapshot s = fleet.snapshot();
  TwinSet now;
  now.devices = {twins.devices[0], s.devices().Document(*s.devices().FindRow("b"))};
  EXPECT_EQ(ToJson(*now.devices[1].Find("tags")), R"({"a":{"b":7},"x\u001e0":"t"})");
  EXPECT_TRUE(CheckSnapshot(s, now));
  auto loaded = Fleet::Deserialize(fleet.Serialize(), "mem");
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_TRUE(CheckSnapshot((*loaded)->snapshot(), now));
}

TEST(IndexOracleTest, GeneratedFleetsAgree) {
  struct Case {
    uint64_t devices, seed;
    double module_share, skew;
    uint32_t buildings;
    double optional_share, array_share;
  };
  for (const Case& k :
       {Case{300, 1, 0.2, 1.0, 50, 0.3, 0.2}, Case{1200, 42, 0.5, 0.0, 200, 1.0, 1.0},
        Case{150, 9, 1.0, 3.0, 3, 0.0, 0.0}, Case{1, 5, 1.0, 1.0, 1, 1.0, 1.0}}) {
    SCOPED_TRACE(fmt::format("devices {} seed {}", k.devices, k.seed));
    FleetSpec spec;
    spec.devices = k.devices;
    spec.seed = k.seed;
    spec.module_share = k.module_share;
    spec.skew = k.skew;
    spec.buildings = k.buildings;
    spec.optional_tag_share = k.optional_share;
    spec.array_tag_share = k.array_share;
    TwinSet twins = Split(GenerateFleetValues(spec));
    ASSERT_EQ(twins.devices.size(), k.devices);
    Fleet fleet(twins);
    EXPECT_TRUE(CheckSnapshot(fleet.snapshot(), twins));
  }
  // Case-variant keys beside generated twins: a few devices get "Floor" / "FLOOR" tags.
  FleetSpec spec;
  spec.devices = 200;
  spec.seed = 3;
  std::vector<Value> docs = GenerateFleetValues(spec);
  TwinSet twins = Split(docs);
  for (size_t i = 0; i < twins.devices.size(); i += 17) {
    Object doc = twins.devices[i].as_object();
    for (Member& m : doc) {
      if (m.first != "tags") continue;
      Object tags = m.second.as_object();
      tags.emplace_back(i % 2 ? "Floor" : "FLOOR", Value::String(std::to_string(i)));
      m.second = Value::MakeObject(std::move(tags));
    }
    twins.devices[i] = Value::MakeObject(std::move(doc));
  }
  Fleet fleet(twins);
  EXPECT_TRUE(CheckSnapshot(fleet.snapshot(), twins));
  ColumnPath floor = {Step{false, "TAGS", 0}, Step{false, "floor", 0}};
  const std::vector<uint32_t>* variants = fleet.snapshot().devices().FindFolded(floor);
  ASSERT_NE(variants, nullptr);
  EXPECT_GE(variants->size(), 3u);
}

TEST(IndexOracleTest, OracleNoticesDisagreement) {
  // The oracle is not vacuous: a table checked against other documents fails.
  TwinSet twins = Twins(kHandWritten);
  auto table = Table::Build(twins.devices, false);
  std::vector<Value> other = twins.devices;
  other[1] = J(R"({"deviceId":"b","tags":{"floor":2}})");
  EXPECT_FALSE(CheckTableAgainstDocuments(*table, other));
  other = twins.devices;
  other.pop_back();
  EXPECT_FALSE(CheckTableAgainstDocuments(*table, other));
  EXPECT_FALSE(CheckTableAgainstDocuments(*table, twins.modules));
}

// ---- random update sequences against a shadow model -----------------------------------------

using Key = std::pair<std::string, std::string>;  // (deviceId, moduleId)
using Shadow = std::map<Key, Value>;

TwinSet ShadowTwins(const Shadow& shadow) {
  TwinSet t;
  for (const auto& [key, doc] : shadow) (key.second.empty() ? t.devices : t.modules).push_back(doc);
  return t;
}

Shadow ShadowOf(const TwinSet& twins) {
  Shadow s;
  for (const Value& d : twins.devices) s[{IdOf(d, "deviceId"), ""}] = d;
  for (const Value& d : twins.modules) s[{IdOf(d, "deviceId"), IdOf(d, "moduleId")}] = d;
  return s;
}

class RandomTwins {
 public:
  explicit RandomTwins(uint64_t seed) : rng_(seed) {}

  size_t Below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  bool Chance(int percent) { return Below(100) < static_cast<size_t>(percent); }

  // Keys valid in patches (A.9): case variants, unicode, no '.', '$', '#', ' ' or controls.
  std::string PatchKey() {
    static const char* const kKeys[] = {"a",  "b",    "x",    "floor",  "Floor",  "FLOOR", "x_y",
                                        "n1", "ключ", "日本", "emoji😀", "k-dash", "q",     "Q"};
    return kKeys[Below(std::size(kKeys))];
  }
  // Keys of whole documents (upserts are not validated): odd characters too.
  std::string DocKey() {
    static const char* const kOdd[] = {"a.b",   "with space", "$dollar", "#hash", "",
                                       "[[x]]", "tab\t",      "quote\"", "é"};
    return Chance(15) ? kOdd[Below(std::size(kOdd))] : PatchKey();
  }

  Value Number() {
    switch (Below(5)) {
      case 0:
        return Value::Number(static_cast<double>(Below(5)));
      case 1:
        return Value::Number(-static_cast<double>(Below(1000000)) - 1);
      case 2:
        return Value::Number(static_cast<double>(Below(1 << 20)) / 8 + 0.125);
      case 3:
        return Value::Number(Chance(50) ? 4503599627370495.0 : -4503599627370496.0);
      default:
        return Value::Number(static_cast<double>(Below(20)));
    }
  }
  Value String() {
    static const char* const kStrings[] = {"",   "a",           "A",           "b",
                                           "43", "x y",         "température", "東京",
                                           "😀",  "line\nbreak", "quote\"",     "zzz"};
    return Chance(70) ? Value::String(kStrings[Below(std::size(kStrings))])
                      : Value::String("s" + std::to_string(Below(50)));
  }

  // A random JSON value; `patch`: keys valid in patches (nulls then mean deletion).
  Value Any(int depth, bool patch) {
    size_t pick = Below(depth >= 3 ? 6 : 10);
    switch (pick) {
      case 0:
        return Value::Null();
      case 1:
        return Value::Bool(Chance(50));
      case 2:
      case 3:
        return Number();
      case 4:
      case 5:
        return String();
      case 6: {
        Array a;
        size_t n = Below(4);
        for (size_t i = 0; i < n; ++i) a.push_back(Any(depth + 1, patch));
        return Value::MakeArray(std::move(a));
      }
      default:
        return Obj(depth + 1, patch, 4);
    }
  }
  Value Obj(int depth, bool patch, size_t max_members) {
    Object o;
    std::set<std::string> used;
    size_t n = Below(max_members + 1);
    for (size_t i = 0; i < n; ++i) {
      std::string k = patch ? PatchKey() : DocKey();
      if (!used.insert(k).second) continue;
      o.emplace_back(k, Any(depth, patch));
    }
    return Value::MakeObject(std::move(o));
  }

  Value Twin(const Key& key) {
    Object doc;
    doc.emplace_back("deviceId", Value::String(key.first));
    if (!key.second.empty()) doc.emplace_back("moduleId", Value::String(key.second));
    if (Chance(80)) doc.emplace_back("etag", Value::String(EtagForVersion(1 + Below(5))));
    if (Chance(80)) doc.emplace_back("version", Value::Number(static_cast<double>(1 + Below(5))));
    if (Chance(85)) doc.emplace_back("tags", Obj(1, false, 6));
    if (Chance(70)) {
      Object props;
      if (Chance(80)) props.emplace_back("desired", Obj(1, false, 4));
      if (Chance(80)) props.emplace_back("reported", Obj(1, false, 4));
      doc.emplace_back("properties", Value::MakeObject(std::move(props)));
    }
    if (Chance(20)) doc.emplace_back("status", String());
    if (Chance(10)) doc.emplace_back("extra", Any(1, false));
    return Value::MakeObject(std::move(doc));
  }

  Value Patch() {
    Object p;
    bool tags = Chance(70);
    bool desired = !tags || Chance(40);
    if (tags) p.emplace_back("tags", Obj(1, true, 4));
    if (desired) {
      p.emplace_back("properties", Value::MakeObject({{"desired", Obj(1, true, 3)}}));
    }
    return Value::MakeObject(std::move(p));
  }

  std::string DeviceId() {
    size_t n = Below(40);
    return (n % 7 == 3 ? "Dev-" : "dev-") + std::to_string(n);
  }
  std::string ModuleId() {
    static const char* const kModules[] = {"$edgeAgent", "$edgeHub", "m1", "M1", "mod-é"};
    return kModules[Below(std::size(kModules))];
  }

 private:
  std::mt19937_64 rng_;
};

// Builds a random batch that should succeed, applying it to `shadow` as it goes (the shadow's own
// simple logic; patches and replaces through the same pure functions as the fleet).
std::vector<Mutation> RandomBatch(RandomTwins& r, Shadow* shadow, size_t size,
                                  const std::string& now) {
  std::vector<Mutation> batch;
  PatchOptions options;
  options.now = now;
  auto pick_existing = [&]() -> const Key* {
    if (shadow->empty()) return nullptr;
    auto it = shadow->begin();
    std::advance(it, r.Below(shadow->size()));
    return &it->first;
  };
  for (size_t tries = 0; batch.size() < size && tries < size * 20; ++tries) {
    size_t what = r.Below(100);
    Mutation m;
    if (what < 30) {  // patch
      const Key* key = pick_existing();
      if (key == nullptr) continue;
      m.kind = Mutation::Kind::kPatch;
      m.device_id = key->first;
      m.module_id = key->second;
      m.patch = r.Patch();
      const Value& doc = (*shadow)[*key];
      m.if_match = r.Chance(20) && doc.Find("etag") && doc.Find("etag")->is_string()
                       ? "\"" + doc.Find("etag")->as_string() + "\""
                       : "*";
      Expected<PatchResult> res = ApplyTwinPatch(doc, m.patch, m.if_match, options);
      if (!res.ok()) continue;  // e.g. a section grew too large: try another mutation
      (*shadow)[*key] = res->twin;
    } else if (what < 40) {  // replace
      const Key* key = pick_existing();
      if (key == nullptr) continue;
      m.kind = Mutation::Kind::kReplace;
      m.device_id = key->first;
      m.module_id = key->second;
      m.patch = r.Patch();
      m.if_match = "*";
      Expected<PatchResult> res = ReplaceTwin((*shadow)[*key], m.patch, m.if_match, options);
      if (!res.ok()) continue;
      (*shadow)[*key] = res->twin;
    } else if (what < 60) {  // upsert an existing twin
      const Key* key = pick_existing();
      if (key == nullptr) continue;
      m.kind = Mutation::Kind::kUpsert;
      m.doc = r.Twin(*key);
      (*shadow)[*key] = m.doc;
    } else if (what < 82) {  // upsert a (probably) new twin; modules mostly of existing devices
      Key key{r.DeviceId(), ""};
      if (r.Chance(40)) {
        const Key* parent = pick_existing();
        if (parent != nullptr && r.Chance(85)) key.first = parent->first;
        key.second = r.ModuleId();
      }
      m.kind = Mutation::Kind::kUpsert;
      m.doc = r.Twin(key);
      (*shadow)[key] = m.doc;
    } else {  // delete; a device takes its modules with it
      const Key* key = pick_existing();
      if (key == nullptr) continue;
      Key k = *key;
      m.kind = Mutation::Kind::kDelete;
      m.device_id = k.first;
      m.module_id = k.second;
      if (k.second.empty()) {
        for (auto it = shadow->lower_bound(k); it != shadow->end() && it->first.first == k.first;) {
          it = shadow->erase(it);
        }
      } else {
        shadow->erase(k);
      }
    }
    batch.push_back(std::move(m));
  }
  return batch;
}

// A batch that must fail: valid mutations with one bad one somewhere in it.
std::vector<Mutation> FailingBatch(RandomTwins& r, const Shadow& shadow, const std::string& now) {
  Shadow scratch = shadow;
  std::vector<Mutation> batch = RandomBatch(r, &scratch, 1 + r.Below(6), now);
  Mutation bad;
  switch (r.Below(6)) {
    case 0:
      bad.kind = Mutation::Kind::kDelete;
      bad.device_id = "no-such-device";
      break;
    case 1:
      bad.kind = Mutation::Kind::kPatch;
      bad.device_id = "no-such-device";
      bad.module_id = "m";
      bad.patch = J(R"({"tags":{"a":1}})");
      break;
    case 2:  // an invalid patch (A.9: '.' in a key)
      if (scratch.empty()) return FailingBatch(r, shadow, now);
      bad.kind = Mutation::Kind::kPatch;
      bad.device_id = scratch.begin()->first.first;
      bad.module_id = scratch.begin()->first.second;
      bad.patch = J(R"({"tags":{"a.b":1}})");
      break;
    case 3:  // If-Match that cannot match
      if (scratch.empty()) return FailingBatch(r, shadow, now);
      bad.kind = Mutation::Kind::kPatch;
      bad.device_id = scratch.begin()->first.first;
      bad.module_id = scratch.begin()->first.second;
      bad.patch = J(R"({"tags":{"a":2}})");
      bad.if_match = "\"no-such-etag\"";
      break;
    case 4:
      bad.kind = Mutation::Kind::kUpsert;
      bad.doc = J(R"({"tags":{}})");
      break;
    default: {  // deleting a twin twice at the end of a batch
      if (scratch.empty()) return FailingBatch(r, shadow, now);
      Mutation del;
      del.kind = Mutation::Kind::kDelete;
      del.device_id = scratch.begin()->first.first;
      del.module_id = scratch.begin()->first.second;
      batch.push_back(del);
      batch.push_back(del);
      return batch;
    }
  }
  batch.insert(batch.begin() + static_cast<ptrdiff_t>(r.Below(batch.size() + 1)), bad);
  return batch;
}

std::string Describe(const std::vector<Mutation>& batch) {
  std::string out;
  for (const Mutation& m : batch) {
    static const char* const kKinds[] = {"upsert", "delete", "patch", "replace"};
    out += fmt::format("\n  {} {}/{} {} {} if-match {}", kKinds[static_cast<int>(m.kind)],
                       m.device_id, m.module_id, ToJson(m.doc), ToJson(m.patch), m.if_match);
  }
  return out;
}

// `splice`: patches take the splice fast path (Fleet::set_splice_patches; the default) or the
// whole-document path. Either way the fleet must agree with the shadow model, whose patches are
// ApplyTwinPatch on whole documents.
void RunRandomUpdates(uint64_t seed, size_t batches, const FleetSpec& spec, bool splice = true) {
  SCOPED_TRACE(fmt::format("seed {}, splice {}", seed, splice));
  RandomTwins r(seed);
  TwinSet initial = Split(GenerateFleetValues(spec));
  // A few hand-written twins beside the generated ones.
  for (const Value& d : Twins(kHandWritten).devices) initial.devices.push_back(d);
  std::sort(initial.devices.begin(), initial.devices.end(), [](const Value& a, const Value& b) {
    return IdOf(a, "deviceId") < IdOf(b, "deviceId");
  });
  Shadow shadow = ShadowOf(initial);
  auto fleet = std::make_unique<Fleet>(initial);
  fleet->set_splice_patches(splice);
  uint64_t spliced = 0;
  Snapshot first = fleet->snapshot();
  Shadow first_shadow = shadow;
  ASSERT_TRUE(CheckSnapshot(first, ShadowTwins(shadow)));
  size_t failed = 0, loads = 0, mutations = 0;
  for (size_t b = 0; b < batches; ++b) {
    SCOPED_TRACE(fmt::format("batch {}", b));
    std::string now =
        FormatTimestamp(17'000'000'000'000'000 + static_cast<int64_t>(b) * 10'000'000);
    Snapshot before = fleet->snapshot();
    Shadow old_shadow = shadow;
    if (b % 5 == 4) {  // a failing batch changes nothing
      std::vector<Mutation> bad = FailingBatch(r, shadow, now);
      Expected<uint64_t> v = fleet->Apply(bad, now);
      ASSERT_FALSE(v.ok()) << "a batch with a bad mutation was applied: " << Describe(bad);
      ++failed;
      EXPECT_EQ(fleet->snapshot().version(), before.version());
      ASSERT_TRUE(CheckSnapshot(fleet->snapshot(), ShadowTwins(shadow)));
      continue;
    }
    std::vector<Mutation> batch = RandomBatch(r, &shadow, 1 + r.Below(r.Chance(20) ? 40 : 8), now);
    mutations += batch.size();
    Expected<uint64_t> v = fleet->Apply(batch, now);
    ASSERT_TRUE(v.ok()) << v.error().message;
    Snapshot after = fleet->snapshot();
    EXPECT_EQ(*v, after.version());
    EXPECT_EQ(after.version(), before.version() + 1);
    ASSERT_TRUE(CheckSnapshot(after, ShadowTwins(shadow)));
    // Snapshot isolation: the snapshot taken before the batch still shows the old state.
    ASSERT_TRUE(CheckSnapshot(before, ShadowTwins(old_shadow)));
    // Save and load: byte-identical re-serialisation, the same content; continue on the loaded
    // fleet, so later batches mutate deserialised columns.
    if (b % 7 == 6 || b + 1 == batches) {
      std::string bytes = fleet->Serialize();
      Expected<std::unique_ptr<Fleet>> loaded = Fleet::Deserialize(bytes, "mem");
      ASSERT_TRUE(loaded.ok()) << loaded.error().message;
      EXPECT_EQ((*loaded)->Serialize(), bytes);
      EXPECT_EQ((*loaded)->snapshot().version(), after.version());
      ASSERT_TRUE(CheckSnapshot((*loaded)->snapshot(), ShadowTwins(shadow)));
      spliced += fleet->spliced_patches();
      fleet = std::move(loaded.value());
      fleet->set_splice_patches(splice);
      ++loads;
    }
  }
  // The very first snapshot outlived every later version.
  EXPECT_TRUE(CheckSnapshot(first, ShadowTwins(first_shadow)));
  EXPECT_GT(failed, 0u);
  EXPECT_GT(loads, 0u);
  EXPECT_GT(mutations, batches);
  spliced += fleet->spliced_patches();
  if (splice) {
    EXPECT_GT(spliced, 0u) << "no patch took the splice path";
  } else {
    EXPECT_EQ(spliced, 0u);
  }
}

// Seeds 1-3 of 40 batches each on a small generated fleet, with or without the splice path.
void RunSmallFleetSeeds(bool splice) {
  FleetSpec spec;
  spec.devices = 30;
  spec.module_share = 0.3;
  spec.optional_tag_share = 0.5;
  spec.array_tag_share = 0.5;
  for (uint64_t seed : {1, 2, 3}) {
    spec.seed = seed;
    RunRandomUpdates(seed, 40, spec, splice);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(IndexOracleTest, RandomUpdatesAgreeWithShadowModel) { RunSmallFleetSeeds(/*splice=*/true); }

TEST(IndexOracleTest, RandomUpdatesWithoutTheSpliceFastPath) {
  RunSmallFleetSeeds(/*splice=*/false);
}

TEST(IndexOracleTest, RandomUpdatesOnAnEmptyFleet) {
  FleetSpec spec;
  spec.devices = 0;
  RunRandomUpdates(11, 40, spec);
}

TEST(IndexOracleTest, RandomUpdatesOnALargerFleet) {
  // Enough rows for several document chunks and postings that pay.
  FleetSpec spec;
  spec.devices = 1100;
  spec.seed = 5;
  spec.module_share = 0.1;
  RunRandomUpdates(5, 6, spec);
}

// Small batches leave their column changes pending (Column::Deferred) until a reader needs them;
// versions nobody read form chains that one merge resolves. Here no snapshot is read until the
// end: snapshots kept along the way, read newest first or oldest first, must each show exactly
// their own state, and no column may hold more pending rows than MaxPendingRows allows.
void RunUnreadChains(uint64_t seed, size_t devices, size_t batches, bool newest_first) {
  SCOPED_TRACE(fmt::format("seed {}", seed));
  FleetSpec spec;
  spec.devices = devices;
  spec.seed = seed;
  spec.module_share = 0.2;
  RandomTwins r(seed);
  TwinSet initial = Split(GenerateFleetValues(spec));
  Shadow shadow = ShadowOf(initial);
  Fleet fleet(initial);
  std::vector<std::pair<Snapshot, Shadow>> kept;
  for (size_t b = 0; b < batches; ++b) {
    std::string now = FormatTimestamp(17'000'000'000'000'000 + static_cast<int64_t>(b) * 10'000);
    std::vector<Mutation> batch = RandomBatch(r, &shadow, 1 + r.Below(3), now);
    Expected<uint64_t> v = fleet.Apply(batch, now);
    ASSERT_TRUE(v.ok()) << v.error().message;
    Snapshot s = fleet.snapshot();
    for (const Table* t : {&s.devices(), &s.modules()}) {
      for (const auto& c : t->columns()) {
        ASSERT_LE(c->pending_rows(), MaxPendingRows(t->row_count()));
      }
    }
    if (b % (batches / 8) == 0 || b + 1 == batches) kept.emplace_back(s, shadow);
  }
  if (newest_first) std::reverse(kept.begin(), kept.end());
  for (const auto& [snapshot, expected] : kept) {
    SCOPED_TRACE(fmt::format("version {}", snapshot.version()));
    ASSERT_TRUE(CheckSnapshot(snapshot, ShadowTwins(expected)));
  }
}

TEST(IndexOracleTest, UnreadVersionsChainTheirMerges) {
  RunUnreadChains(21, 60, 200, /*newest_first=*/true);
  RunUnreadChains(22, 60, 200, /*newest_first=*/false);
}

TEST(IndexOracleTest, LongChainsAreMergedByTheWriter) {
  // More changed rows than MaxPendingRows' floor (1,024) in one column (etag changes with every
  // patch), so writers must merge along the way.
  RunUnreadChains(23, 300, 1600, /*newest_first=*/true);
}

TEST(IndexOracleTest, UpsertDeleteReupsertInOneBatch) {
  Fleet fleet(Twins(R"({"deviceId":"a","tags":{"x":1}}
{"deviceId":"a","moduleId":"m","tags":{"x":2}})"));
  auto up = [](std::string_view json) {
    Mutation m;
    m.kind = Mutation::Kind::kUpsert;
    m.doc = J(json);
    return m;
  };
  auto del = [](std::string device, std::string module = "") {
    Mutation m;
    m.kind = Mutation::Kind::kDelete;
    m.device_id = std::move(device);
    m.module_id = std::move(module);
    return m;
  };
  // Delete a device (its module goes too), bring both back, add and drop a new one.
  std::vector<Mutation> batch = {del("a"),
                                 up(R"({"deviceId":"a","tags":{"y":"back"}})"),
                                 up(R"({"deviceId":"n","moduleId":"m2"})"),
                                 up(R"({"deviceId":"n"})"),
                                 del("n"),
                                 up(R"({"deviceId":"a","moduleId":"m","tags":{"x":"s"}})")};
  ASSERT_TRUE(fleet.Apply(batch, kNow).ok());
  TwinSet want = Twins(R"({"deviceId":"a","tags":{"y":"back"}}
{"deviceId":"a","moduleId":"m","tags":{"x":"s"}})");
  EXPECT_TRUE(CheckSnapshot(fleet.snapshot(), want));
  // A module upserted earlier in a batch goes when its device is deleted later in it.
  batch = {up(R"({"deviceId":"a","moduleId":"z"})"), del("a")};
  ASSERT_TRUE(fleet.Apply(batch, kNow).ok());
  EXPECT_TRUE(CheckSnapshot(fleet.snapshot(), TwinSet()));
  EXPECT_FALSE(fleet.Delete("a").ok());
  EXPECT_FALSE(fleet.Delete("a", "m").ok());
}

TEST(IndexOracleTest, PatchesChangeTypesStepByStep) {
  // One key through number -> string -> object -> array -> deleted -> number, in tags and in
  // properties.desired, each step checked against the shadow (the same pure patch function).
  TwinSet twins =
      Twins(R"({"deviceId":"a","tags":{"k":1,"other":true},"properties":{"desired":{"k":1}}}
{"deviceId":"b","tags":{"k":"s"}})");
  Fleet fleet(twins);
  Shadow shadow = ShadowOf(twins);
  PatchOptions options;
  options.now = kNow;
  for (const char* value : {R"("two")", R"({"x":{"y":[1,{"z":null}]},"X":2})", R"([[],{},[1,"a"]])",
                            "null", "3", R"({"x":null})", "null"}) {
    SCOPED_TRACE(value);
    Value patch =
        J(fmt::format(R"({{"tags":{{"k":{0}}},"properties":{{"desired":{{"k":{0}}}}}}})", value));
    Expected<PatchResult> r = ApplyTwinPatch(shadow[{"a", ""}], patch, "*", options);
    ASSERT_TRUE(r.ok()) << r.error().message;
    shadow[{"a", ""}] = r->twin;
    ASSERT_TRUE(fleet.Patch("a", "", patch, "*", kNow).ok());
    ASSERT_TRUE(CheckSnapshot(fleet.snapshot(), ShadowTwins(shadow)));
  }
}

// ---- corrupted index files -------------------------------------------------------------------

// A small fleet with deleted rows, modules, strings, numbers and postings.
std::string SmallFleetBytes() {
  Fleet fleet(Twins(kHandWritten));
  EXPECT_TRUE(fleet.Delete("C").ok());
  EXPECT_TRUE(fleet.Patch("a", "", J(R"({"tags":{"floor":2,"s":"y"}})"), "*", kNow).ok());
  EXPECT_TRUE(fleet.Upsert(J(R"({"deviceId":"g","tags":{"floor":2,"s":"x","n":1.5}})")).ok());
  EXPECT_TRUE(fleet.Delete("b", "m").ok());
  return fleet.Serialize();
}

// The same, smaller, for the sweeps that try every byte.
std::string TinyFleetBytes() {
  Fleet fleet(Twins(R"({"deviceId":"a","tags":{"floor":1,"s":"x","l":[1,"a"]}}
{"deviceId":"b","tags":{"floor":2,"s":"x","t":true}}
{"deviceId":"c","tags":{"floor":1.5,"z":null}}
{"deviceId":"b","moduleId":"m","tags":{"s":"y"}})"));
  EXPECT_TRUE(fleet.Delete("c").ok());
  EXPECT_TRUE(fleet.Patch("a", "", J(R"({"tags":{"floor":2,"s":"y"}})"), "*", kNow).ok());
  return fleet.Serialize();
}

// Opening whatever Deserialize accepted must be safe: read everything, mutate, save again.
void Exercise(Fleet& fleet) {
  Snapshot s = fleet.snapshot();
  for (const Table* t : {&s.devices(), &s.modules()}) {
    for (uint32_t row : t->order()) {
      for (const auto& c : t->columns()) c->ValueAt(row);
      t->Document(row);
    }
  }
  ToTwinSet(s);
  std::vector<Mutation> batch;
  for (uint32_t row : s.devices().order()) {
    Mutation m;
    m.kind = Mutation::Kind::kPatch;
    m.device_id = std::string(s.devices().device_id(row));
    m.patch = J(R"({"tags":{"floor":7,"s":"z","n":null}})");
    batch.push_back(m);
  }
  Mutation up;
  up.kind = Mutation::Kind::kUpsert;
  up.doc = J(R"({"deviceId":"new","tags":{"floor":1.25,"s":"q"}})");
  batch.push_back(up);
  (void)fleet.Apply(batch, kNow);
  if (!s.devices().order().empty()) {
    (void)fleet.Delete(std::string(s.devices().device_id(s.devices().order().front())));
  }
  fleet.Serialize();
}

void ExpectEveryTruncationRefused(const std::string& bytes) {
  ASSERT_TRUE(Fleet::Deserialize(bytes, "mem").ok());
  for (size_t n = 0; n < bytes.size(); ++n) {
    Expected<std::unique_ptr<Fleet>> r =
        Fleet::Deserialize(std::string_view(bytes).substr(0, n), "mem");
    ASSERT_FALSE(r.ok()) << "a prefix of " << n << " of " << bytes.size() << " bytes was accepted";
    EXPECT_EQ(r.error().message.rfind("mem: ", 0), 0u) << r.error().message;
  }
  EXPECT_FALSE(Fleet::Deserialize(bytes + '\0', "mem").ok());
  EXPECT_FALSE(Fleet::Deserialize(bytes + bytes, "mem").ok());
}

TEST(IndexOracleTest, EveryTruncationIsRefused) {
  for (const std::string& bytes : {TinyFleetBytes(), SmallFleetBytes()}) {
    ExpectEveryTruncationRefused(bytes);
  }
}

TEST(IndexOracleTest, ByteFlipsAreRefused) {
  for (const std::string& bytes : {TinyFleetBytes(), SmallFleetBytes()}) {
    for (size_t pos = 0; pos < bytes.size(); ++pos) {
      for (unsigned char mask : {0x01, 0x80, 0xFF}) {
        std::string bad = bytes;
        bad[pos] = static_cast<char>(bad[pos] ^ mask);
        Expected<std::unique_ptr<Fleet>> r = Fleet::Deserialize(bad, "mem");
        ASSERT_FALSE(r.ok()) << "flipping byte " << pos << " of " << bytes.size() << " with "
                             << int{mask} << " was not noticed";
      }
    }
  }
}

// ---- edits with a valid checksum -------------------------------------------------------------
// The layout of the file as fleet.cc writes it (kept in step with it by these tests passing on
// unmodified files): magic (8), format version (u32), payload length (u64), checksum (u64),
// payload. The checksum function is internal to fleet.cc; this is a copy of it.

constexpr size_t kHeaderBytes = 28;

uint64_t CopyOfChecksumV1(std::string_view data) {
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ data.size();
  size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, data.data() + i, 8);
    h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
    h ^= h >> 32;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, data.data() + i, data.size() - i);
  h = (h ^ tail) * 0xC4CEB9FE1A85EC53ULL;
  return h ^ (h >> 29);
}

// Format version 2: four lanes.
uint64_t CopyOfChecksum(std::string_view data) {
  uint64_t h[4] = {0x9E3779B97F4A7C15ULL ^ data.size(), 0xBF58476D1CE4E5B9ULL,
                   0x94D049BB133111EBULL, 0xD6E8FEB86659FD93ULL};
  size_t i = 0;
  for (; i + 32 <= data.size(); i += 32) {
    for (int k = 0; k < 4; ++k) {
      uint64_t w;
      std::memcpy(&w, data.data() + i + 8 * k, 8);
      h[k] = (h[k] ^ w) * 0xFF51AFD7ED558CCDULL;
      h[k] ^= h[k] >> 32;
    }
  }
  for (int k = 0; i + 8 <= data.size(); i += 8, ++k) {
    uint64_t w;
    std::memcpy(&w, data.data() + i, 8);
    h[k] = (h[k] ^ w) * 0xFF51AFD7ED558CCDULL;
    h[k] ^= h[k] >> 32;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, data.data() + i, data.size() - i);
  uint64_t r = h[0];
  for (int k = 1; k < 4; ++k) r = (r ^ h[k]) * 0xC4CEB9FE1A85EC53ULL;
  r = (r ^ tail) * 0xC4CEB9FE1A85EC53ULL;
  return r ^ (r >> 29);
}

// Re-seals a file whose payload was edited (length and checksum).
std::string Reseal(std::string bytes) {
  uint64_t length = bytes.size() - kHeaderBytes;
  std::memcpy(bytes.data() + 12, &length, 8);
  uint64_t sum = CopyOfChecksum(std::string_view(bytes).substr(kHeaderBytes));
  std::memcpy(bytes.data() + 20, &sum, 8);
  return bytes;
}

// Offsets of the parts of a file, found by walking it like the reader does.
struct ColumnLayout {
  ColumnPath path;
  size_t numbers = 0, number_count = 0;  // offset of the first number
  size_t codes = 0, code_count = 0;
  size_t distinct = 0, distinct_count = 0;
  size_t number_postings = 0, number_posting_count = 0;  // u32 count
};
struct TableLayout {
  size_t order = 0, order_count = 0;  // offset of the first row id
  std::vector<size_t> device_ids;     // offset of each row's device id
  std::vector<uint32_t> device_id_sizes;
  std::vector<ColumnLayout> columns;
};

class Walker {
 public:
  explicit Walker(std::string_view bytes) : bytes_(bytes) {}
  uint32_t U32() {
    uint32_t v;
    std::memcpy(&v, bytes_.data() + at_, 4);
    at_ += 4;
    return v;
  }
  uint64_t U64() {
    uint64_t v;
    std::memcpy(&v, bytes_.data() + at_, 8);
    at_ += 8;
    return v;
  }
  void Skip(size_t n) { at_ += n; }
  void SkipBytes() { at_ += U32(); }
  size_t at() const { return at_; }

  TableLayout Table() {
    TableLayout t;
    Skip(1);
    uint32_t rows = U32();
    SkipBytes();  // liveness
    t.order_count = U64();
    t.order = at_;
    Skip(t.order_count * 4);
    // Rows: u32 lengths of the documents, the device ids and the module ids; then the device
    // ids, the module ids and the documents back to back.
    std::vector<uint32_t> lengths(3 * static_cast<size_t>(rows));
    for (uint32_t& n : lengths) n = U32();
    size_t documents = 0, modules = 0;
    for (uint32_t r = 0; r < rows; ++r) {
      t.device_ids.push_back(at_);
      t.device_id_sizes.push_back(lengths[rows + r]);
      Skip(lengths[rows + r]);
      documents += lengths[r];
      modules += lengths[2 * static_cast<size_t>(rows) + r];
    }
    Skip(modules + documents);
    uint32_t columns = U32();
    for (uint32_t i = 0; i < columns; ++i) {
      ColumnLayout c;
      uint32_t steps = U32();
      for (uint32_t s = 0; s < steps; ++s) {
        bool index = bytes_[at_++] == 1;
        if (index) {
          c.path.push_back(Step{true, "", U32()});
        } else {
          uint32_t n = U32();
          c.path.push_back(Step{false, std::string(bytes_.substr(at_, n)), 0});
          Skip(n);
        }
      }
      for (int b = 0; b < 8; ++b) SkipBytes();  // presence + kinds
      c.number_count = U64();
      c.numbers = at_;
      Skip(c.number_count * 8);
      c.code_count = U64();
      c.codes = at_;
      Skip(c.code_count * 4);
      Skip(U64() * 4);  // array lengths
      U32();            // dictionary strings
      Skip(U64());      // the encoded dictionary
      uint32_t postings = U32();
      for (uint32_t s = 0; s < postings; ++s) SkipBytes();
      c.distinct_count = U64();
      c.distinct = at_;
      Skip(c.distinct_count * 8);
      c.number_postings = at_;
      c.number_posting_count = U32();
      for (uint32_t s = 0; s < c.number_posting_count; ++s) SkipBytes();
      t.columns.push_back(std::move(c));
    }
    return t;
  }

 private:
  std::string_view bytes_;
  size_t at_ = 0;
};

TEST(IndexOracleTest, WalkerFollowsTheFormat) {
  std::string bytes = SmallFleetBytes();
  Walker w(bytes);
  w.Skip(kHeaderBytes + 8);
  TableLayout devices = w.Table();
  TableLayout modules = w.Table();
  EXPECT_EQ(w.at(), bytes.size());
  auto fleet = Fleet::Deserialize(bytes, "mem");
  ASSERT_TRUE(fleet.ok());
  Snapshot s = (*fleet)->snapshot();
  EXPECT_EQ(devices.order_count, s.devices().order().size());
  EXPECT_EQ(devices.columns.size(), s.devices().columns().size());
  EXPECT_EQ(modules.columns.size(), s.modules().columns().size());
  EXPECT_EQ(Reseal(bytes), bytes);
}

// Files of the older format versions are still read. tests/data/index/small_v2.twinq is
// SmallFleetBytes() as the version 2 writer saved it (the rows' texts interleaved, dictionaries
// as lists of strings); version 1 differs from it only in the checksum (one lane). Both give the
// fleet SmallFleetBytes() builds today (ExpectSameFleet), and are written back in the current
// version. A header whose checksum is of the other version, and a version beyond the current
// one, are refused.
std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The fleet read from an older file is the fleet `current` holds: the same documents, every
// column agreeing with them (the oracle), and a file that reads back to the same bytes. (Not
// byte-equal to `current`: the order in which a batch adds new columns, so their ids, changed
// after the version 2 file was written.)
void ExpectSameFleet(Fleet& read, const std::string& current) {
  Expected<std::unique_ptr<Fleet>> want = Fleet::Deserialize(current, "current");
  ASSERT_TRUE(want.ok());
  TwinSet twins = ToTwinSet((*want)->snapshot());
  TwinSet got = ToTwinSet(read.snapshot());
  ASSERT_EQ(got.devices.size(), twins.devices.size());
  ASSERT_EQ(got.modules.size(), twins.modules.size());
  for (size_t i = 0; i < twins.devices.size(); ++i) EXPECT_EQ(got.devices[i], twins.devices[i]);
  for (size_t i = 0; i < twins.modules.size(); ++i) EXPECT_EQ(got.modules[i], twins.modules[i]);
  // The version 1 and 2 files were written when merges kept the strings and numbers no row
  // held any more (the deleted twin "C"'s among them); they keep them until a column's next
  // merge.
  EXPECT_TRUE(CheckSnapshot(read.snapshot(), twins, /*every_value_held=*/false));
  std::string once = read.Serialize();
  Expected<std::unique_ptr<Fleet>> again = Fleet::Deserialize(once, "again");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->Serialize(), once);
}

TEST(IndexOracleTest, ReadsFormatVersions1And2) {
  std::string current = SmallFleetBytes();
  uint32_t version;
  std::memcpy(&version, current.data() + 8, 4);
  ASSERT_EQ(version, 3u);
  std::string v2 = ReadFile(TWINQ_SOURCE_DIR "/tests/data/index/small_v2.twinq");
  ASSERT_GT(v2.size(), kHeaderBytes);
  std::memcpy(&version, v2.data() + 8, 4);
  ASSERT_EQ(version, 2u);
  ASSERT_EQ(Reseal(v2), v2);  // the version 2 checksum is the current one
  EXPECT_EQ(SealIndexPayload(std::string_view(v2).substr(kHeaderBytes), 2), v2);
  EXPECT_EQ(SealIndexPayload(std::string_view(current).substr(kHeaderBytes), 3), current);
  Expected<std::unique_ptr<Fleet>> from_v2 = Fleet::Deserialize(v2, "v2");
  ASSERT_TRUE(from_v2.ok()) << from_v2.error().message;
  ExpectSameFleet(**from_v2, current);
  ExpectEveryTruncationRefused(v2);

  std::string v1 = v2;
  version = 1;
  std::memcpy(v1.data() + 8, &version, 4);
  uint64_t sum = CopyOfChecksumV1(std::string_view(v1).substr(kHeaderBytes));
  std::string v1_wrong_sum = v1;
  std::memcpy(v1.data() + 20, &sum, 8);
  EXPECT_EQ(SealIndexPayload(std::string_view(v2).substr(kHeaderBytes), 1), v1);
  Expected<std::unique_ptr<Fleet>> from_v1 = Fleet::Deserialize(v1, "v1");
  ASSERT_TRUE(from_v1.ok()) << from_v1.error().message;
  ExpectSameFleet(**from_v1, current);
  Expected<std::unique_ptr<Fleet>> bad = Fleet::Deserialize(v1_wrong_sum, "v1");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("checksum mismatch"), std::string::npos);

  // A version 3 payload under a version 2 header: the layouts differ, and it is refused.
  std::string v3_as_v2 = current;
  version = 2;
  std::memcpy(v3_as_v2.data() + 8, &version, 4);
  EXPECT_FALSE(Fleet::Deserialize(v3_as_v2, "mixed").ok());

  std::string v4 = current;
  version = 4;
  std::memcpy(v4.data() + 8, &version, 4);
  Expected<std::unique_ptr<Fleet>> future = Fleet::Deserialize(v4, "v4");
  ASSERT_FALSE(future.ok());
  EXPECT_NE(future.error().message.find("index format version 4 is not supported"),
            std::string::npos);
}

// Every single-byte edit of the payload, re-sealed with a valid checksum, is either refused or
// gives a fleet that can be read, mutated and saved without crashing.
TEST(IndexOracleTest, ResealedEditsNeverCrash) {
  std::string bytes = TinyFleetBytes();
  size_t accepted = 0, refused = 0;
  for (size_t pos = kHeaderBytes; pos < bytes.size(); ++pos) {
    for (unsigned char mask : {0x01, 0x80, 0xFF}) {
      std::string bad = bytes;
      bad[pos] = static_cast<char>(bad[pos] ^ mask);
      Expected<std::unique_ptr<Fleet>> r = Fleet::Deserialize(Reseal(bad), "mem");
      if (!r.ok()) {
        ++refused;
        continue;
      }
      ++accepted;
      Exercise(**r);
    }
  }
  EXPECT_GT(refused, 0u);
  RecordProperty("accepted", static_cast<int>(accepted));
}

// Structural inconsistencies with a valid checksum are refused: the reader must not rely on the
// checksum for the invariants later code depends on.
TEST(IndexOracleTest, ResealedInconsistenciesAreRefused) {
  std::string bytes = SmallFleetBytes();
  Walker w(bytes);
  w.Skip(kHeaderBytes + 8);
  TableLayout devices = w.Table();
  ASSERT_GE(devices.order_count, 3u);
  auto expect_refused = [](const std::string& edited, const char* what) {
    Expected<std::unique_ptr<Fleet>> r = Fleet::Deserialize(Reseal(edited), "mem");
    EXPECT_FALSE(r.ok()) << what << " was accepted";
    if (r.ok()) Exercise(**r);
  };
  auto put_u32 = [](std::string* s, size_t at, uint32_t v) { std::memcpy(s->data() + at, &v, 4); };
  auto get_u32 = [](const std::string& s, size_t at) {
    uint32_t v;
    std::memcpy(&v, s.data() + at, 4);
    return v;
  };
  {  // order() out of id order
    std::string bad = bytes;
    uint32_t r0 = get_u32(bad, devices.order), r1 = get_u32(bad, devices.order + 4);
    put_u32(&bad, devices.order, r1);
    put_u32(&bad, devices.order + 4, r0);
    expect_refused(bad, "an unsorted order()");
  }
  {  // a row twice in order() (and another live row missing)
    std::string bad = bytes;
    put_u32(&bad, devices.order + 4, get_u32(bad, devices.order));
    expect_refused(bad, "a repeated row in order()");
  }
  {  // two rows with the same id: make the second device's id equal to the first's
    std::string bad = bytes;
    uint32_t row0 = get_u32(bad, devices.order), row1 = get_u32(bad, devices.order + 4);
    size_t at0 = devices.device_ids[row0], at1 = devices.device_ids[row1];
    uint32_t n0 = devices.device_id_sizes[row0], n1 = devices.device_id_sizes[row1];
    if (n0 == n1) {
      bad.replace(at1, n1, bad.substr(at0, n0));
      expect_refused(bad, "two rows with one id");
    }
  }
  bool number_edit = false, code_edit = false;
  for (const ColumnLayout& c : devices.columns) {
    if (c.number_posting_count > 0 && c.number_count > 0 && !number_edit) {
      // A number that no posting holds.
      std::string bad = bytes;
      double d = 12345.5;
      std::memcpy(bad.data() + c.numbers, &d, 8);
      expect_refused(
          bad, fmt::format("a number outside the postings in {}", PathDisplay(c.path)).c_str());
      // Distinct numbers out of order.
      if (c.distinct_count >= 2) {
        std::string bad2 = bytes;
        std::swap_ranges(bad2.begin() + c.distinct, bad2.begin() + c.distinct + 8,
                         bad2.begin() + c.distinct + 8);
        expect_refused(bad2,
                       fmt::format("unsorted distinct numbers in {}", PathDisplay(c.path)).c_str());
      }
      number_edit = true;
    }
    if (c.code_count >= 2 && !code_edit) {
      // A valid code, but another string than the postings say.
      std::string bad = bytes;
      uint32_t code0 = get_u32(bad, c.codes), code1 = get_u32(bad, c.codes + 4);
      if (code0 != code1) {
        put_u32(&bad, c.codes, code1);
        expect_refused(
            bad, fmt::format("codes disagreeing with postings in {}", PathDisplay(c.path)).c_str());
        code_edit = true;
      }
    }
  }
  EXPECT_TRUE(number_edit);
  EXPECT_TRUE(code_edit);
}

}  // namespace
}  // namespace twinq::index
