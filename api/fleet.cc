// Fleet, Snapshot and RowSet over index::Fleet.
#include "twinq/fleet.h"

#include "api/internal.h"
#include "engine/common/json_reader.h"
#include "engine/common/value.h"

namespace twinq {

using api_internal::FleetImpl;
using api_internal::FromError;
using api_internal::Guard;
using api_internal::RowSetImpl;
using api_internal::SnapshotImpl;

namespace {

// The snapshot of an empty fleet, for default-constructed Snapshots and RowSets.
const std::shared_ptr<const SnapshotImpl>& EmptySnapshot() {
  static const std::shared_ptr<const SnapshotImpl> empty = [] {
    index::Fleet fleet;
    return std::make_shared<const SnapshotImpl>(SnapshotImpl{fleet.snapshot()});
  }();
  return empty;
}

const index::Table& TableOf(const RowSetImpl& r) {
  return r.collection == check::Collection::kModules ? r.snapshot->snapshot.modules()
                                                     : r.snapshot->snapshot.devices();
}

StatusOr<Value> ParseJsonArg(std::string_view text, std::string_view name) {
  Expected<Value> v = ParseJson(text, name);
  if (!v.ok()) return Status(ErrorCode::kInvalidArgument, v.error().message);
  return std::move(v).value();
}

}  // namespace

// ---- RowSet ----

RowSet::RowSet() {
  auto impl = std::make_shared<RowSetImpl>();
  impl->snapshot = EmptySnapshot();
  impl_ = std::move(impl);
}

RowSet::RowSet(std::shared_ptr<const RowSetImpl> impl) : impl_(std::move(impl)) {}

size_t RowSet::size() const { return static_cast<size_t>(impl_->rows.Cardinality()); }

Collection RowSet::collection() const { return api_internal::ToPublic(impl_->collection); }

uint64_t RowSet::snapshot_version() const { return impl_->snapshot->snapshot.version(); }

StatusOr<std::vector<std::string>> RowSet::Ids() const {
  return Guard([&]() -> StatusOr<std::vector<std::string>> {
    const index::Table& table = TableOf(*impl_);
    std::vector<std::string> ids;
    ids.reserve(size());
    for (uint32_t row : table.InIdOrderByRank(impl_->rows)) {
      std::string id(table.device_id(row));
      if (table.modules()) {
        id += '/';
        id += table.module_id(row);
      }
      ids.push_back(std::move(id));
    }
    return ids;
  });
}

Status RowSet::ForEachImpl(Visit visit, void* ctx) const {
  const index::Table& table = TableOf(*impl_);
  std::vector<uint32_t> order;
  try {
    order = table.InIdOrderByRank(impl_->rows);
  } catch (const std::bad_alloc&) {
    return Status(ErrorCode::kResourceExhausted, "out of memory");
  } catch (...) {
    return Status(ErrorCode::kInternal, "internal error while ordering the rows");
  }
  // The callback runs outside the try: its own exceptions are the caller's.
  for (uint32_t row : order) {
    std::string_view module = table.modules() ? table.module_id(row) : std::string_view();
    if (!visit(ctx, table.device_id(row), module)) break;
  }
  return Status();
}

// ---- Snapshot ----

Snapshot::Snapshot() : impl_(EmptySnapshot()) {}

Snapshot::Snapshot(std::shared_ptr<const SnapshotImpl> impl) : impl_(std::move(impl)) {}

uint64_t Snapshot::version() const { return impl_->snapshot.version(); }

size_t Snapshot::device_count() const {
  return static_cast<size_t>(impl_->snapshot.devices().live_count());
}

size_t Snapshot::module_count() const {
  return static_cast<size_t>(impl_->snapshot.modules().live_count());
}

StatusOr<std::string> Snapshot::TwinJson(std::string_view device_id,
                                         std::string_view module_id) const {
  return Guard([&]() -> StatusOr<std::string> {
    const index::Table& t =
        module_id.empty() ? impl_->snapshot.devices() : impl_->snapshot.modules();
    std::optional<uint32_t> row = t.FindRow(device_id, module_id);
    if (!row) {
      std::string who(device_id);
      if (!module_id.empty()) {  // push_back + append: GCC 12 -O3 misreports "/" + string
        who.push_back('/');
        who.append(module_id);
      }
      return Status(ErrorCode::kNotFound, "no twin " + who);
    }
    return std::string(t.doc_json(*row));
  });
}

// ---- TwinChange ----

TwinChange TwinChange::Upsert(std::string twin_json) {
  TwinChange c;
  c.kind = Kind::kUpsert;
  c.json = std::move(twin_json);
  return c;
}

TwinChange TwinChange::Delete(std::string device_id, std::string module_id) {
  TwinChange c;
  c.kind = Kind::kDelete;
  c.device_id = std::move(device_id);
  c.module_id = std::move(module_id);
  return c;
}

TwinChange TwinChange::Patch(std::string device_id, std::string module_id, std::string patch_json,
                             std::string if_match) {
  TwinChange c;
  c.kind = Kind::kPatch;
  c.device_id = std::move(device_id);
  c.module_id = std::move(module_id);
  c.json = std::move(patch_json);
  c.if_match = std::move(if_match);
  return c;
}

TwinChange TwinChange::Replace(std::string device_id, std::string module_id, std::string twin_json,
                               std::string if_match) {
  TwinChange c =
      Patch(std::move(device_id), std::move(module_id), std::move(twin_json), std::move(if_match));
  c.kind = Kind::kReplace;
  return c;
}

// ---- Fleet ----

Fleet::Fleet() : impl_(std::make_shared<FleetImpl>()) {
  impl_->fleet = std::make_unique<index::Fleet>();
}

Fleet::Fleet(std::shared_ptr<FleetImpl> impl) : impl_(std::move(impl)) {}

Fleet::~Fleet() = default;

StatusOr<Fleet> Fleet::FromTwinsFile(const std::string& path) {
  return Guard([&]() -> StatusOr<Fleet> {
    Fleet f;
    StatusOr<size_t> n = f.LoadTwinsFile(path);
    if (!n.ok()) return n.status();
    return f;
  });
}

StatusOr<Fleet> Fleet::FromTwinsText(std::string_view text, std::string_view name) {
  return Guard([&]() -> StatusOr<Fleet> {
    Fleet f;
    StatusOr<size_t> n = f.LoadTwinsText(text, name);
    if (!n.ok()) return n.status();
    return f;
  });
}

StatusOr<Fleet> Fleet::OpenIndex(const std::string& path) {
  return Guard([&]() -> StatusOr<Fleet> {
    Expected<std::unique_ptr<index::Fleet>> opened = index::Fleet::Open(path);
    if (!opened.ok()) return Status(ErrorCode::kIoError, opened.error().message);
    auto impl = std::make_shared<FleetImpl>();
    impl->fleet = std::move(opened).value();
    return Fleet(std::move(impl));
  });
}

StatusOr<size_t> Fleet::LoadTwinsFile(const std::string& path) {
  return Guard([&]() -> StatusOr<size_t> {
    Expected<size_t> n = impl_->fleet->LoadTwinsFile(path);
    if (!n.ok()) return Status(ErrorCode::kIoError, n.error().message);
    return *n;
  });
}

StatusOr<size_t> Fleet::LoadTwinsText(std::string_view text, std::string_view name) {
  return Guard([&]() -> StatusOr<size_t> {
    Expected<size_t> n = impl_->fleet->LoadTwinsText(text, name);
    if (!n.ok()) return Status(ErrorCode::kIoError, n.error().message);
    return *n;
  });
}

StatusOr<size_t> Fleet::SaveIndex(const std::string& path) const {
  return Guard([&]() -> StatusOr<size_t> {
    Expected<size_t> n = impl_->fleet->Save(path);
    if (!n.ok()) return Status(ErrorCode::kIoError, n.error().message);
    return *n;
  });
}

Snapshot Fleet::snapshot() const {
  // make_shared may throw bad_alloc; a snapshot cannot fail otherwise. Fall back to the shared
  // empty snapshot rather than throwing across the API.
  try {
    return Snapshot(std::make_shared<const SnapshotImpl>(SnapshotImpl{impl_->fleet->snapshot()}));
  } catch (...) {
    return Snapshot();
  }
}

StatusOr<uint64_t> Fleet::Apply(const std::vector<TwinChange>& batch) {
  return Guard([&]() -> StatusOr<uint64_t> {
    std::vector<index::Mutation> mutations;
    mutations.reserve(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      const TwinChange& c = batch[i];
      index::Mutation m;
      m.device_id = c.device_id;
      m.module_id = c.module_id;
      m.if_match = c.if_match;
      std::string name = "change " + std::to_string(i + 1);
      switch (c.kind) {
        case TwinChange::Kind::kUpsert: {
          m.kind = index::Mutation::Kind::kUpsert;
          StatusOr<Value> v = ParseJsonArg(c.json, name);
          if (!v.ok()) return v.status();
          m.doc = std::move(v).value();
          break;
        }
        case TwinChange::Kind::kDelete:
          m.kind = index::Mutation::Kind::kDelete;
          break;
        case TwinChange::Kind::kPatch:
        case TwinChange::Kind::kReplace: {
          m.kind = c.kind == TwinChange::Kind::kPatch ? index::Mutation::Kind::kPatch
                                                      : index::Mutation::Kind::kReplace;
          StatusOr<Value> v = ParseJsonArg(c.json, name);
          if (!v.ok()) return v.status();
          m.patch = std::move(v).value();
          break;
        }
      }
      if (c.kind != TwinChange::Kind::kUpsert && c.device_id.empty()) {
        return Status(ErrorCode::kInvalidArgument, name + ": device_id is empty");
      }
      mutations.push_back(std::move(m));
    }
    Expected<uint64_t> v = impl_->fleet->Apply(mutations, index::NowTimestamp());
    if (!v.ok()) return FromError(v.error(), ErrorCode::kInvalidArgument);
    return *v;
  });
}

StatusOr<uint64_t> Fleet::Patch(std::string_view device_id, std::string_view module_id,
                                std::string_view patch_json, std::string_view if_match) {
  return Guard([&]() -> StatusOr<uint64_t> {
    return Apply({TwinChange::Patch(std::string(device_id), std::string(module_id),
                                    std::string(patch_json), std::string(if_match))});
  });
}

StatusOr<uint64_t> Fleet::Upsert(std::string_view twin_json) {
  return Guard(
      [&]() -> StatusOr<uint64_t> { return Apply({TwinChange::Upsert(std::string(twin_json))}); });
}

StatusOr<uint64_t> Fleet::Delete(std::string_view device_id, std::string_view module_id) {
  return Guard([&]() -> StatusOr<uint64_t> {
    return Apply({TwinChange::Delete(std::string(device_id), std::string(module_id))});
  });
}

}  // namespace twinq
