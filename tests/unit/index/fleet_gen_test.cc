// The fleet generator: determinism, document shapes (reference A.8), order, shares and skew.
#include "index/fleet_gen.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "engine/common/json_reader.h"

namespace twinq::index {
namespace {

std::vector<std::string> Lines(const FleetSpec& spec) {
  std::vector<std::string> lines;
  GenerateFleet(spec, [&lines](std::string_view line) { lines.emplace_back(line); });
  return lines;
}

std::string Joined(const FleetSpec& spec) {
  std::string text;
  GenerateFleet(spec, [&text](std::string_view line) {
    text.append(line);
    text.push_back('\n');
  });
  return text;
}

// FNV-1a over the NDJSON text: a fingerprint of the exact bytes.
uint64_t Fingerprint(const FleetSpec& spec) {
  uint64_t h = 1469598103934665603ULL;
  GenerateFleet(spec, [&h](std::string_view line) {
    for (unsigned char c : line) h = (h ^ c) * 1099511628211ULL;
    h = (h ^ '\n') * 1099511628211ULL;
  });
  return h;
}

const Value* At(const Value& v, std::initializer_list<std::string_view> path) {
  const Value* cur = &v;
  for (std::string_view key : path) {
    cur = cur->Find(key);
    if (cur == nullptr) return nullptr;
  }
  return cur;
}

bool IsTime(const Value* v) {
  if (v == nullptr || !v->is_string()) return false;
  const std::string& s = v->as_string();
  if (s == "0001-01-01T00:00:00Z") return true;
  if (s.size() != 28 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':' || s[19] != '.' || s[27] != 'Z') {
    return false;
  }
  for (int i : {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22, 23, 24, 25, 26}) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

bool IsOneOf(const Value* v, std::initializer_list<std::string_view> options) {
  if (v == nullptr || !v->is_string()) return false;
  return std::find(options.begin(), options.end(), v->as_string()) != options.end();
}

// Every object level of a $metadata tree carries $lastUpdated.
void ExpectMetadataTree(const Value& meta, const std::string& where) {
  ASSERT_TRUE(meta.is_object()) << where;
  EXPECT_TRUE(IsTime(meta.Find("$lastUpdated"))) << where;
  for (const Member& m : meta.as_object()) {
    if (m.second.is_object()) ExpectMetadataTree(m.second, where + "." + m.first);
  }
}

void ExpectSection(const Value& twin, std::string_view section, const std::string& id) {
  const Value* s = At(twin, {"properties", section});
  ASSERT_NE(s, nullptr) << id;
  ASSERT_TRUE(s->is_object()) << id;
  ASSERT_NE(s->Find("$metadata"), nullptr) << id;
  ExpectMetadataTree(*s->Find("$metadata"), id + " $metadata");
  // $metadata mirrors every property of the section.
  for (const Member& m : s->as_object()) {
    if (m.first[0] != '$') {
      EXPECT_NE(s->Find("$metadata")->Find(m.first), nullptr) << id;
    }
  }
  const Value* version = s->Find("$version");
  ASSERT_NE(version, nullptr) << id;
  EXPECT_TRUE(version->is_number() && version->as_number() >= 1) << id;
}

TEST(FleetGenTest, DeviceIdsArePaddedForLexicalOrder) {
  FleetSpec spec;
  EXPECT_EQ(FleetDeviceId(spec, 42), "dev-0000042");
  spec.devices = 10'000'000;
  EXPECT_EQ(FleetDeviceId(spec, 9'999'999), "dev-9999999");
  spec.devices = 10'000'001;
  EXPECT_EQ(FleetDeviceId(spec, 42), "dev-00000042");
}

TEST(FleetGenTest, SameSpecSameBytesOtherSeedOtherBytes) {
  FleetSpec spec;
  spec.devices = 300;
  std::string a = Joined(spec);
  EXPECT_EQ(a, Joined(spec));
  spec.seed = 8;
  EXPECT_NE(a, Joined(spec));
  // A device's document does not depend on the size of the fleet.
  spec.seed = 7;
  spec.devices = 100;
  std::string b = Joined(spec);
  EXPECT_EQ(a.substr(0, b.size()), b);
  EXPECT_EQ(GenerateFleetNdjson(spec), b);  // the convenience, line for line
}

// Pins the exact bytes: a change here means every saved fleet, benchmark and golden file built
// from the generator changes too. Update deliberately.
TEST(FleetGenTest, OutputIsPinned) {
  // FNV-1a of `twinq gen --devices 2000`, and of
  // `twinq gen --devices 2000 --seed 99 --skew 1.5 --module-share 0.5 --buildings 37`.
  EXPECT_EQ(Fingerprint(FleetSpec{.devices = 2000}), 0x652d64b1c8bfb079u);
  EXPECT_EQ(Fingerprint(FleetSpec{
                .devices = 2000, .seed = 99, .module_share = 0.5, .skew = 1.5, .buildings = 37}),
            0x108cb25f0acd871au);
  std::vector<std::string> lines = Lines(FleetSpec{.devices = 1});
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(
      lines[0].substr(0, 84),
      "{\"deviceId\":\"dev-0000000\",\"etag\":\"AAAAAAAAAAk=\",\"deviceEtag\":\"MzE5NDA3Nzk5\","
      "\"status\"");
}

TEST(FleetGenTest, EveryLineParsesAndPrintsBackIdentically) {
  FleetSpec spec;
  spec.devices = 2000;
  std::vector<std::string> lines = Lines(spec);
  std::vector<Value> values = GenerateFleetValues(spec);
  ASSERT_EQ(lines.size(), values.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    Expected<Value> v = ParseJson(lines[i], "line");
    ASSERT_TRUE(v.ok()) << v.error().message;
    // Compact, shortest numbers, no escapes needed: the text is exactly ToJson of the value.
    EXPECT_EQ(ToJson(*v), lines[i]);
    EXPECT_TRUE(*v == values[i]) << i;
  }
}

TEST(FleetGenTest, DeviceTwinShape) {
  FleetSpec spec;
  spec.devices = 2000;
  int devices = 0, desired_set = 0, with_battery = 0, with_temperature = 0, with_reports = 0;
  for (const Value& twin : GenerateFleetValues(spec)) {
    ASSERT_TRUE(twin.is_object());
    if (twin.Find("moduleId") != nullptr) continue;
    ++devices;
    const std::string& id = twin.Find("deviceId")->as_string();
    static const char* const kOrder[] = {"deviceId",
                                         "etag",
                                         "deviceEtag",
                                         "status",
                                         "statusReason",
                                         "statusUpdateTime",
                                         "connectionState",
                                         "lastActivityTime",
                                         "cloudToDeviceMessageCount",
                                         "authenticationType",
                                         "x509Thumbprint",
                                         "modelId",
                                         "version",
                                         "tags",
                                         "properties",
                                         "capabilities",
                                         "deviceScope",
                                         "parentScopes"};
    // Keys appear in the service's order (statusReason and deviceScope are optional).
    size_t k = 0;
    for (const Member& m : twin.as_object()) {
      while (k < std::size(kOrder) && m.first != kOrder[k]) ++k;
      ASSERT_LT(k, std::size(kOrder)) << id << " unexpected or misplaced key " << m.first;
    }
    const Value* etag = twin.Find("etag");
    ASSERT_TRUE(etag && etag->is_string()) << id;
    EXPECT_EQ(etag->as_string().size(), 12u) << id;
    EXPECT_EQ(etag->as_string().substr(0, 8), "AAAAAAAA") << id;
    ASSERT_TRUE(twin.Find("deviceEtag") && twin.Find("deviceEtag")->is_string()) << id;
    EXPECT_TRUE(IsOneOf(twin.Find("status"), {"enabled", "disabled"})) << id;
    EXPECT_TRUE(IsTime(twin.Find("statusUpdateTime"))) << id;
    EXPECT_TRUE(IsOneOf(twin.Find("connectionState"), {"Connected", "Disconnected"})) << id;
    EXPECT_TRUE(IsTime(twin.Find("lastActivityTime"))) << id;
    ASSERT_TRUE(twin.Find("cloudToDeviceMessageCount")->is_number()) << id;
    EXPECT_TRUE(
        IsOneOf(twin.Find("authenticationType"), {"sas", "selfSigned", "certificateAuthority"}))
        << id;
    const Value* thumb = At(twin, {"x509Thumbprint", "primaryThumbprint"});
    ASSERT_NE(thumb, nullptr) << id;
    EXPECT_EQ(thumb->is_string(), twin.Find("authenticationType")->as_string() == "selfSigned");
    ASSERT_TRUE(twin.Find("modelId")->is_string()) << id;
    const std::string& model = twin.Find("modelId")->as_string();
    EXPECT_TRUE(model.empty() || model.rfind("dtmi:", 0) == 0) << id;
    ASSERT_TRUE(twin.Find("version")->is_number()) << id;

    const Value* building = At(twin, {"tags", "building"});
    ASSERT_TRUE(building && building->is_string()) << id;
    int b = std::stoi(building->as_string());
    EXPECT_TRUE(b >= 1 && b <= 200) << id;
    const Value* floor = At(twin, {"tags", "floor"});
    ASSERT_TRUE(floor && floor->is_number()) << id;
    EXPECT_TRUE(floor->as_number() >= 0 && floor->as_number() <= 20) << id;
    const Value* region = At(twin, {"tags", "region"});
    ASSERT_TRUE(region && region->is_string()) << id;
    ASSERT_NE(At(twin, {"tags", "location", "region"}), nullptr) << id;
    EXPECT_TRUE(*At(twin, {"tags", "location", "region"}) == *region) << id;
    ASSERT_TRUE(At(twin, {"tags", "location", "site"})->is_string()) << id;
    const Value* lat = At(twin, {"tags", "location", "geo", "lat"});
    const Value* lon = At(twin, {"tags", "location", "geo", "lon"});
    ASSERT_TRUE(lat && lat->is_number() && lon && lon->is_number()) << id;
    EXPECT_TRUE(lat->as_number() >= -90 && lat->as_number() <= 90) << id;
    EXPECT_TRUE(lon->as_number() >= -180 && lon->as_number() <= 180) << id;
    EXPECT_TRUE(IsOneOf(At(twin, {"tags", "environment"}), {"prod", "staging", "dev"})) << id;

    ExpectSection(twin, "desired", id);
    ExpectSection(twin, "reported", id);
    const Value* desired = At(twin, {"properties", "desired"});
    if (desired->Find("telemetryConfig") != nullptr) {  // else never set: only $metadata
      ++desired_set;
      EXPECT_TRUE(IsOneOf(At(*desired, {"telemetryConfig", "sendFrequency"}),
                          {"30s", "1m", "5m", "15m", "1h"}))
          << id;
      EXPECT_TRUE(At(*desired, {"$metadata", "$lastUpdatedVersion"})) << id;
      EXPECT_TRUE(At(*desired, {"$metadata", "telemetryConfig", "sendFrequency", "$lastUpdated"}))
          << id;
    }
    const Value* reported = At(twin, {"properties", "reported"});
    const Value* battery = reported->Find("batteryLevel");
    if (battery != nullptr) {
      ++with_battery;
      ASSERT_TRUE(battery->is_number()) << id;
      EXPECT_TRUE(battery->as_number() >= 0 && battery->as_number() <= 100) << id;
    }
    const Value* temperature = reported->Find("temperature");
    if (temperature != nullptr) {
      ++with_temperature;
      ASSERT_TRUE(temperature->is_number()) << id;
      EXPECT_TRUE(temperature->as_number() >= -15 && temperature->as_number() <= 38) << id;
    }
    if (reported->Find("firmwareVersion") != nullptr) {  // else never connected
      ++with_reports;
      ASSERT_TRUE(reported->Find("firmwareVersion")->is_string()) << id;
      ASSERT_TRUE(At(*reported, {"telemetryConfig", "sendFrequencyInSecs"})->is_number()) << id;
      EXPECT_TRUE(
          IsOneOf(At(*reported, {"telemetryConfig", "status"}), {"Success", "Pending", "Error"}))
          << id;
      EXPECT_TRUE(IsOneOf(reported->Find("connectivity"), {"wired", "wifi", "cellular"})) << id;
    } else {
      EXPECT_EQ(twin.Find("lastActivityTime")->as_string(), "0001-01-01T00:00:00Z") << id;
    }

    const Value* edge = At(twin, {"capabilities", "iotEdge"});
    ASSERT_TRUE(edge && edge->is_bool()) << id;
    const Value* scopes = twin.Find("parentScopes");
    ASSERT_TRUE(scopes && scopes->is_array()) << id;
    const Value* scope = twin.Find("deviceScope");
    if (edge->as_bool()) {
      ASSERT_TRUE(scope && scope->is_string()) << id;
      EXPECT_EQ(scope->as_string().rfind("ms-azure-iot-edge://" + id + "-", 0), 0u) << id;
      EXPECT_TRUE(scopes->as_array().empty()) << id;
    } else if (scope != nullptr) {  // child of an edge device
      ASSERT_EQ(scopes->as_array().size(), 1u) << id;
      EXPECT_TRUE(scopes->as_array()[0] == *scope) << id;
    }
  }
  EXPECT_EQ(devices, 2000);
  // Optional parts are present on a realistic share of devices, and absent on some.
  EXPECT_GT(desired_set, 1500);
  EXPECT_LT(desired_set, 2000);
  EXPECT_GT(with_battery, 800);
  EXPECT_LT(with_battery, 1600);
  EXPECT_GT(with_temperature, 600);
  EXPECT_LT(with_temperature, 1600);
  EXPECT_GT(with_reports, 1900);
  EXPECT_LT(with_reports, 2000);
}

TEST(FleetGenTest, ModuleTwinsFollowTheirEdgeDevice) {
  FleetSpec spec;
  spec.devices = 2000;
  std::vector<Value> docs = GenerateFleetValues(spec);
  std::string last_device;
  bool last_edge = false;
  std::string last_module;
  int modules_of_device = 0;
  int edge_devices = 0;
  auto check_count = [&] {
    if (last_edge) {
      EXPECT_GE(modules_of_device, 2) << last_device;
      EXPECT_LE(modules_of_device, 5) << last_device;
    }
  };
  for (const Value& doc : docs) {
    const std::string& id = doc.Find("deviceId")->as_string();
    const Value* module = doc.Find("moduleId");
    if (module == nullptr) {
      check_count();
      EXPECT_LT(last_device, id) << "deviceIds sorted and unique";
      last_device = id;
      last_edge = At(doc, {"capabilities", "iotEdge"})->as_bool();
      edge_devices += last_edge;
      last_module.clear();
      modules_of_device = 0;
      continue;
    }
    ASSERT_TRUE(last_edge) << id << " module after a non-edge device";
    EXPECT_EQ(id, last_device);
    ASSERT_TRUE(module->is_string());
    const std::string& m = module->as_string();
    if (modules_of_device == 0) {
      EXPECT_EQ(m, "$edgeAgent");
    } else if (modules_of_device == 1) {
      EXPECT_EQ(m, "$edgeHub");
    }
    EXPECT_LT(last_module, m) << "moduleIds sorted and unique";
    last_module = m;
    ++modules_of_device;
    EXPECT_EQ(doc.Find("tags"), nullptr) << "modules have no device tags";
    EXPECT_TRUE(IsOneOf(doc.Find("connectionState"), {"Connected", "Disconnected"}));
    EXPECT_TRUE(IsTime(doc.Find("lastActivityTime")));
    ASSERT_TRUE(doc.Find("version") && doc.Find("version")->is_number());
    ASSERT_TRUE(doc.Find("etag") && doc.Find("etag")->is_string());
    EXPECT_TRUE(IsOneOf(doc.Find("status"), {"enabled", "disabled"}));
    ExpectSection(doc, "desired", id + "/" + m);
    ExpectSection(doc, "reported", id + "/" + m);
    EXPECT_TRUE(At(doc, {"properties", "reported", "status"})->is_string());
  }
  check_count();
  EXPECT_GT(edge_devices, 0);

  // ReadTwins agrees: same devices, same modules, no duplicates.
  std::string text = Joined(spec);
  Expected<TwinSet> set = ReadTwins(text, "fleet");
  ASSERT_TRUE(set.ok()) << set.error().message;
  EXPECT_EQ(set->devices.size(), 2000u);
  EXPECT_EQ(set->devices.size() + set->modules.size(), docs.size());
}

struct Stats {
  size_t devices = 0;
  size_t edge = 0;
  size_t owner = 0;
  size_t roles = 0;
  size_t case_pairs = 0;
  size_t device_bytes = 0;
  size_t module_lines = 0;
  size_t module_bytes = 0;
  std::map<std::string, size_t> buildings;
  std::map<std::string, size_t> firmware;
  size_t TopBuilding() const {
    size_t top = 0;
    for (const auto& [name, n] : buildings) top = std::max(top, n);
    return top;
  }
};

Stats Collect(const FleetSpec& spec) {
  Stats s;
  GenerateFleet(spec, [&s](std::string_view line) {
    Expected<Value> v = ParseJson(line, "line");
    if (!v.ok()) return;
    if (v->Find("moduleId") != nullptr) {
      ++s.module_lines;
      s.module_bytes += line.size();
      return;
    }
    ++s.devices;
    s.device_bytes += line.size();
    s.edge += At(*v, {"capabilities", "iotEdge"})->as_bool();
    s.owner += At(*v, {"tags", "owner"}) != nullptr;
    s.roles += At(*v, {"tags", "roles"}) != nullptr;
    s.case_pairs += At(*v, {"tags", "Floor"}) != nullptr;
    ++s.buildings[At(*v, {"tags", "building"})->as_string()];
    if (const Value* fw = At(*v, {"properties", "reported", "firmwareVersion"})) {
      ++s.firmware[fw->as_string()];
    }
  });
  return s;
}

TEST(FleetGenTest, SharesAndSizesAsSpecified) {
  FleetSpec spec;
  spec.devices = 10'000;
  Stats s = Collect(spec);
  ASSERT_EQ(s.devices, 10'000u);
  EXPECT_NEAR(s.edge / 10'000.0, 0.2, 0.02);
  EXPECT_NEAR(s.owner / 10'000.0, 0.3, 0.02);
  EXPECT_NEAR(s.roles / 10'000.0, 0.2, 0.02);
  EXPECT_LE(s.case_pairs, 30u);  // ~0.1%
  EXPECT_GE(s.case_pairs, 1u);
  EXPECT_GE(s.module_lines, s.edge * 2);
  EXPECT_LE(s.module_lines, s.edge * 5);
  EXPECT_EQ(s.buildings.size(), 200u);
  double avg = static_cast<double>(s.device_bytes) / s.devices;
  // Every $metadata level carries a 28-character $lastUpdated, so a device is ~1.7 KB.
  EXPECT_GE(avg, 1000);
  EXPECT_LE(avg, 1800);
  double module_avg = static_cast<double>(s.module_bytes) / s.module_lines;
  EXPECT_GE(module_avg, 500);
  EXPECT_LE(module_avg, 1200);

  spec.module_share = 0;
  spec.optional_tag_share = 1;
  spec.array_tag_share = 0;
  spec.devices = 1000;
  s = Collect(spec);
  EXPECT_EQ(s.edge, 0u);
  EXPECT_EQ(s.module_lines, 0u);
  EXPECT_EQ(s.owner, 1000u);
  EXPECT_EQ(s.roles, 0u);
}

TEST(FleetGenTest, SkewConcentratesValues) {
  FleetSpec spec;
  spec.devices = 10'000;
  spec.skew = 0;
  Stats uniform = Collect(spec);
  spec.skew = 1.5;
  Stats skewed = Collect(spec);
  // Uniform: ~50 devices per building; skew 1.5: the top building holds a third or more.
  EXPECT_LT(uniform.TopBuilding(), 120u);
  EXPECT_GT(skewed.TopBuilding(), 2500u);
  EXPECT_LT(skewed.buildings.size(), uniform.buildings.size());
  size_t uniform_fw = 0, skewed_fw = 0;
  for (const auto& [v, n] : uniform.firmware) uniform_fw = std::max(uniform_fw, n);
  for (const auto& [v, n] : skewed.firmware) skewed_fw = std::max(skewed_fw, n);
  EXPECT_GT(skewed_fw, 2 * uniform_fw);
}

TEST(FleetGenTest, OutOfRangeSpecsAreClamped) {
  FleetSpec spec;
  spec.devices = 50;
  spec.module_share = 7;
  spec.optional_tag_share = -1;
  spec.skew = -3;
  spec.buildings = 0;
  Stats s = Collect(spec);
  EXPECT_EQ(s.edge, 50u);
  EXPECT_EQ(s.owner, 0u);
  EXPECT_EQ(s.buildings.size(), 1u);
  EXPECT_TRUE(Lines(FleetSpec{.devices = 0}).empty());
}

}  // namespace
}  // namespace twinq::index
