// The fleet: device and module twins with their columnar index, as a sequence of immutable
// versions. Readers take a Snapshot (a reference to one version) and are never blocked by
// writers; a writer builds the next version beside the current one and publishes it atomically,
// so no reader ever sees half a change. One writer at a time (writes are serialised internally).
#ifndef TWINQ_INDEX_FLEET_H_
#define TWINQ_INDEX_FLEET_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/json_reader.h"
#include "engine/common/result.h"
#include "index/table.h"
#include "index/twin_patch.h"

namespace twinq::index {

struct FleetState {
  std::shared_ptr<const Table> devices;
  std::shared_ptr<const Table> modules;
  uint64_t version = 0;  // increases with every published change
};

// An immutable view of the fleet at one version. Cheap to copy; safe to share across threads.
class Snapshot {
 public:
  Snapshot() = default;
  explicit Snapshot(std::shared_ptr<const FleetState> s) : state_(std::move(s)) {}
  const Table& devices() const { return *state_->devices; }
  const Table& modules() const { return *state_->modules; }
  uint64_t version() const { return state_->version; }

 private:
  std::shared_ptr<const FleetState> state_;
};

// One write of a batch.
struct Mutation {
  enum class Kind : uint8_t { kUpsert, kDelete, kPatch, kReplace };
  Kind kind = Kind::kUpsert;
  Value doc;              // kUpsert: the whole twin (deviceId, optional moduleId)
  std::string device_id;  // kDelete, kPatch, kReplace
  std::string module_id;  // empty for device twins
  Value patch;            // kPatch: an IoT Hub twin patch; kReplace: the replacement
  std::string if_match;   // kPatch, kReplace: expected etag ("*" or empty forces)
  // kPatch: the row the twin was last seen in (a job's targets keep their rows), or
  // kNoRowHint. Only a hint: used where that row is live and holds this twin, otherwise the
  // twin is looked up by its ids. It never changes the result, only how fast the twin is found.
  uint32_t row_hint = kNoRowHint;
  static constexpr uint32_t kNoRowHint = UINT32_MAX;
};

// How Apply runs a batch.
struct ApplyOptions {
  // Threads (the caller's included) that compute the spliced patches (twin_splice.h) of a batch
  // ahead, before its mutations are applied in order: a spliced patch depends only on the twin as
  // the batch found it, so the twins' splices can be computed side by side. The result is the
  // same for any value. 1: everything on the caller's thread.
  unsigned threads = 1;
  // Batches with fewer mutations run on the caller's thread alone (threads cost tens of µs).
  // `threads` also bounds the threads that diff a table's changed rows (when there are at least
  // this many) and merge its columns (Table::WithChanges).
  size_t parallel_min_batch = 256;
};

// The spliced patches of a batch (twin_splice.h) computed before the batch is applied, on any
// threads, while the fleet keeps changing: a twin job computes its next batch while the current
// one is applied (docs/jobs.md). Apply takes a prepared splice only where the twin's stored
// document is still the one it was computed from; it computes the others itself, so the result
// of Apply is the same with or without one.
class PreparedBatch {
 public:
  PreparedBatch() = default;

 private:
  friend class Fleet;
  struct Entry {
    bool done = false;  // a patch, looked at
    std::optional<uint32_t> row;
    std::optional<Change> change;  // nullopt: the fast path declines this patch
    const char* doc = nullptr;     // the stored document it was computed from (its identity)
    size_t doc_size = 0;
  };
  // The version the splices were computed against. Holding it keeps their documents alive, so
  // no later document can have the same address: an unchanged (address, size) is the same text.
  std::shared_ptr<const FleetState> base_;
  std::string now_;
  std::vector<Entry> entries_;
};

class Fleet {
 public:
  Fleet();
  explicit Fleet(const TwinSet& twins);

  // Where LoadTwinsFile keeps the twins' documents.
  enum class InputDocs {
    kCopy,  // in the fleet's own memory: the file may change or go afterwards
    // As views of the file's contents, wherever the file spells a document exactly as the fleet
    // stores it (compact JSON, as `twinq gen` writes): no copy into fresh memory. The fleet then
    // keeps the file mapped, as Open keeps an index file, and the file must not be truncated
    // or rewritten in place while the fleet lives. For `twinq index build`, which saves the
    // fleet and exits.
    kKeepInput,
  };
  // Replaces the contents with the twins of a file (NDJSON, JSON array, objects) and returns
  // the number of twins loaded.
  Expected<size_t> LoadTwinsFile(const std::string& path, InputDocs docs = InputDocs::kCopy);
  // The same for twins in memory (`name` names them in error messages).
  Expected<size_t> LoadTwinsText(std::string_view text, std::string_view name);
  void Reset(const TwinSet& twins);

  Snapshot snapshot() const { return Snapshot(state_.load()); }

  // Applies a batch atomically: every mutation succeeds and one new version is published, or
  // nothing changes and the first error is returned (naming the mutation's position and twin).
  // `now` is written to $lastUpdated by patches (index::FormatTimestamp).
  // `prepared` (optional, consumed): splices of this batch computed ahead (see PreparedBatch);
  // ignored unless it was started for a batch of this size and this `now`.
  Expected<uint64_t> Apply(const std::vector<Mutation>& batch, const std::string& now,
                           const ApplyOptions& apply = {}, PreparedBatch* prepared = nullptr);
  // Preparing a batch: StartPrepare against the current version, then PrepareRange for parts
  // [begin, end) of it. Threads may prepare disjoint parts of one batch at the same time; none of
  // this blocks or waits for a writer. With the splice path off, nothing is prepared.
  PreparedBatch StartPrepare(size_t batch_size, const std::string& now) const;
  void PrepareRange(const std::vector<Mutation>& batch, size_t begin, size_t end,
                    PreparedBatch* prepared) const;
  // Patches (kPatch) of a twin not yet touched by the batch go through the splice fast path
  // (twin_splice.h) unless this is switched off; off, every patch parses, patches and prints the
  // whole twin (the oracle of the fast path; the results are the same, byte for byte).
  void set_splice_patches(bool on) { splice_patches_.store(on, std::memory_order_relaxed); }
  // Patches applied through the splice path so far (tests and benchmarks check it is taken).
  uint64_t spliced_patches() const { return spliced_patches_.load(std::memory_order_relaxed); }
  // Patches whose splice Apply took from a caller's PreparedBatch (still valid) so far.
  uint64_t prepared_patches_taken() const {
    return prepared_taken_.load(std::memory_order_relaxed);
  }
  // Single-twin conveniences over Apply.
  Expected<uint64_t> Upsert(Value doc);
  Expected<uint64_t> Delete(const std::string& device_id, const std::string& module_id = "");
  Expected<uint64_t> Patch(const std::string& device_id, const std::string& module_id,
                           const Value& patch, const std::string& if_match, const std::string& now);

  // The whole fleet (documents + index) to one file, and back. The format is versioned and
  // checksummed; a truncated or corrupted file is refused with a clear Error.
  Expected<size_t> Save(const std::string& path) const;
  // The file Save(path) writes first and then renames to `path`.
  static std::string SaveTemporaryPath(const std::string& path) { return path + ".tmp"; }
  static Expected<std::unique_ptr<Fleet>> Open(const std::string& path);
  // The same, to and from memory.
  std::string Serialize() const;
  static Expected<std::unique_ptr<Fleet>> Deserialize(std::string_view bytes,
                                                      const std::string& name);

 private:
  // Deserialize; with an `owner` of `bytes`, the documents and dictionaries are views into them
  // (Open's mapping). `payload_checksum`, when set, gives the checksum of the payload for the
  // file's format version (Open reads it from the file) instead of a pass over `bytes`.
  using PayloadChecksum = std::function<Expected<uint64_t>(uint32_t version)>;
  static Expected<std::unique_ptr<Fleet>> DeserializeOwned(std::string_view bytes,
                                                           const std::string& name,
                                                           std::shared_ptr<const void> owner,
                                                           const PayloadChecksum& payload_checksum);
  // Publishes the tables of a streamed load: `visit(devices, modules)` adds the twins to the two
  // TableStreams (see LoadTwinsFile).
  template <class Visit>
  Expected<size_t> LoadStreamed(Visit&& visit);

  std::atomic<std::shared_ptr<const FleetState>> state_;
  std::mutex writer_;
  std::atomic<bool> splice_patches_{true};
  std::atomic<uint64_t> spliced_patches_{0};
  std::atomic<uint64_t> prepared_taken_{0};
};

// A whole index file around `payload` (the bytes after the header): magic, format `version`
// (1 to the current one), payload length and the version's checksum. For tests and fuzzers
// that edit a payload and must get past the checksum to the structure checks behind it.
std::string SealIndexPayload(std::string_view payload, uint32_t version);

// The live documents of a snapshot, parsed, in id order (the input of the reference engine).
TwinSet ToTwinSet(const Snapshot& snapshot);

// The timestamp of now, as written to $lastUpdated.
std::string NowTimestamp();

}  // namespace twinq::index

#endif  // TWINQ_INDEX_FLEET_H_
