#include "index/table.h"

#include <gtest/gtest.h>

#include "engine/common/json_reader.h"
#include "index/fleet.h"

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

TEST(TableTest, FoldedCatalogKeepsCaseVariants) {
  TwinSet t = Twins(R"({"deviceId":"a","tags":{"floor":1,"Floor":2}})");
  auto table = Table::Build(t.devices, false);
  const auto* ids = table->FindFolded(P({"TAGS", "FLOOR"}));
  ASSERT_NE(ids, nullptr);
  ASSERT_EQ(ids->size(), 2u);
  EXPECT_EQ(table->column((*ids)[0])->path()[1].name, "Floor");  // byte order of spelling
}

TEST(FleetTest, PatchUpsertDeleteAndSnapshots) {
  Fleet fleet(Twins(R"({"deviceId":"a","tags":{"x":1},"properties":{"desired":{"$version":1},"reported":{}},"version":1,"etag":"AAAAAAAAAAE="}
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

}  // namespace
}  // namespace twinq::index
