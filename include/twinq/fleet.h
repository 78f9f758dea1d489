// twinq public API: the fleet of device and module twins, its snapshots and row sets.
//
// A Fleet holds twins (JSON documents) and their columnar index as a sequence of immutable
// versions. Readers take a Snapshot (one version) and evaluate conditions and queries on it;
// writers (Apply, Patch, Upsert, Delete, Load*) publish the next version atomically, so a reader
// never sees half a change and is never blocked by a writer.
//
// Thread safety:
//   Fleet     every member is thread-safe. Writes are serialised internally (one writer at a
//             time; concurrent writers wait for each other); snapshot() never blocks.
//             Fleet is a handle: copies refer to the same twins (like a shared_ptr).
//   Snapshot  immutable; copy it freely and share it across threads.
//   RowSet    immutable; share it across threads. It keeps its snapshot alive.
#ifndef TWINQ_FLEET_H_
#define TWINQ_FLEET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "twinq/status.h"

namespace twinq {

// The collection a condition or query reads.
enum class Collection : uint8_t {
  kDevices,  // device twins: FROM devices, and bare conditions
  kModules,  // module twins: FROM devices.modules
  kJobs,     // device job records: FROM devices.jobs (queries only; see JobScheduler)
};

class Snapshot;
class Condition;
class Query;
class JobScheduler;

namespace api_internal {
struct FleetImpl;
struct SnapshotImpl;
struct RowSetImpl;
}  // namespace api_internal

// The rows a condition selected in one snapshot: a compressed bitmap, with the snapshot it
// belongs to. Ids come out in the stable result order (deviceId, then moduleId).
class RowSet {
 public:
  RowSet();  // empty, over an empty snapshot

  size_t size() const;
  bool empty() const { return size() == 0; }
  Collection collection() const;
  uint64_t snapshot_version() const;

  // The ids in order: "deviceId", or "deviceId/moduleId" for module twins.
  StatusOr<std::vector<std::string>> Ids() const;

  // Calls f(device_id, module_id) for every row in order (module_id is empty for device twins).
  // f returns void, or bool (false stops the iteration). The views are valid during the call.
  // An error (out of memory while ordering the rows) is returned before f is first called; an
  // exception thrown by f itself propagates to the caller.
  template <class F>
  Status ForEach(F&& f) const {
    return ForEachImpl(
        [](void* ctx, std::string_view device, std::string_view module) -> bool {
          auto& fn = *static_cast<std::remove_reference_t<F>*>(ctx);
          if constexpr (std::is_same_v<decltype(fn(device, module)), void>) {
            fn(device, module);
            return true;
          } else {
            return static_cast<bool>(fn(device, module));
          }
        },
        const_cast<void*>(static_cast<const void*>(&f)));
  }

 private:
  friend class Condition;
  using Visit = bool (*)(void* ctx, std::string_view device, std::string_view module);
  Status ForEachImpl(Visit visit, void* ctx) const;
  explicit RowSet(std::shared_ptr<const api_internal::RowSetImpl> impl);
  std::shared_ptr<const api_internal::RowSetImpl> impl_;
};

// One version of the fleet.
class Snapshot {
 public:
  Snapshot();  // an empty fleet

  uint64_t version() const;     // increases with every published change
  size_t device_count() const;  // live device twins
  size_t module_count() const;  // live module twins

  // The twin document as compact JSON; kNotFound when there is no such twin.
  StatusOr<std::string> TwinJson(std::string_view device_id, std::string_view module_id = {}) const;

 private:
  friend class Fleet;
  friend class Condition;
  friend class Query;
  friend class RowSet;
  explicit Snapshot(std::shared_ptr<const api_internal::SnapshotImpl> impl);
  std::shared_ptr<const api_internal::SnapshotImpl> impl_;
};

// One change of a batch (Fleet::Apply). JSON is given as text.
struct TwinChange {
  enum class Kind : uint8_t {
    kUpsert,   // json: the whole twin (with "deviceId", and "moduleId" for a module twin)
    kDelete,   // device_id (+ module_id); deleting a device deletes its modules
    kPatch,    // json: an IoT Hub twin patch ({"tags": ..., "properties": {"desired": ...}})
    kReplace,  // json: the replacement twin (tags and desired properties)
  };
  Kind kind = Kind::kUpsert;
  std::string device_id;  // kDelete, kPatch, kReplace
  std::string module_id;  // empty for device twins
  std::string json;
  std::string if_match = "*";  // kPatch, kReplace: the expected etag ("*": any)

  static TwinChange Upsert(std::string twin_json);
  static TwinChange Delete(std::string device_id, std::string module_id = {});
  static TwinChange Patch(std::string device_id, std::string module_id, std::string patch_json,
                          std::string if_match = "*");
  static TwinChange Replace(std::string device_id, std::string module_id, std::string twin_json,
                            std::string if_match = "*");
};

class Fleet {
 public:
  Fleet();  // empty
  Fleet(const Fleet&) = default;
  Fleet& operator=(const Fleet&) = default;
  ~Fleet();

  // A fleet from a twins file: NDJSON, a JSON array, or concatenated objects; module twins are
  // documents with both "deviceId" and "moduleId". kIoError names file, line and column.
  static StatusOr<Fleet> FromTwinsFile(const std::string& path);
  // The same from text in memory; `name` names it in error messages.
  static StatusOr<Fleet> FromTwinsText(std::string_view text, std::string_view name = "<twins>");
  // A fleet from an index file written by Save (or `twinq index build`). A truncated or
  // corrupted file is refused (kIoError). The file is memory-mapped and the twins' documents
  // and the index's string dictionaries stay in the mapping (they are not copied), so no other
  // program may rewrite or truncate the
  // file in place while the fleet, or a snapshot of it, is alive; SaveIndex and `twinq index
  // build` write a new file and rename it, which is safe (docs/index.md, "File format").
  static StatusOr<Fleet> OpenIndex(const std::string& path);

  // Replace the contents (one new version); return the number of twins loaded.
  StatusOr<size_t> LoadTwinsFile(const std::string& path);
  StatusOr<size_t> LoadTwinsText(std::string_view text, std::string_view name = "<twins>");
  // Writes the whole fleet (documents + index) to an index file; returns its size in bytes.
  StatusOr<size_t> SaveIndex(const std::string& path) const;

  // The current version. Never blocks. (Out of memory, its only failure, gives an empty
  // snapshot.)
  Snapshot snapshot() const;

  // Applies a batch atomically: every change succeeds and one new version is published (its
  // number is returned), or nothing changes and the first error is returned. Patches follow IoT
  // Hub's rules (null removes a property, version and etag move, $metadata is kept).
  StatusOr<uint64_t> Apply(const std::vector<TwinChange>& batch);
  // Single-change conveniences.
  StatusOr<uint64_t> Patch(std::string_view device_id, std::string_view module_id,
                           std::string_view patch_json, std::string_view if_match = "*");
  StatusOr<uint64_t> Upsert(std::string_view twin_json);
  StatusOr<uint64_t> Delete(std::string_view device_id, std::string_view module_id = {});

 private:
  friend class JobScheduler;
  explicit Fleet(std::shared_ptr<api_internal::FleetImpl> impl);
  std::shared_ptr<api_internal::FleetImpl> impl_;
};

}  // namespace twinq

#endif  // TWINQ_FLEET_H_
