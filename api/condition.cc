// Condition (compile once, evaluate on any snapshot) and ConditionCache (LRU by text).
#include "twinq/condition.h"

#include <list>
#include <unordered_map>

#include "api/internal.h"
#include "engine/vm/compiler.h"
#include "engine/vm/interpreter.h"
#include "engine/vm/query.h"
#include "tools/frontend.h"

namespace twinq {

using api_internal::ConditionImpl;
using api_internal::Guard;
using api_internal::RowSetImpl;

namespace api_internal {

std::shared_ptr<const ConditionImpl::Compiled> ConditionImpl::ProgramFor(
    const index::Table& table) const {
  uint64_t rows = table.row_count();  // O(1), unlike live_count()
  {
    std::lock_guard<std::mutex> lock(mu_);
    // A program is correct on any table of its collection; only its term order comes from the
    // statistics it was compiled with. Rebuild it when the table's row count (live and
    // deleted rows) changed by more than 2x.
    if (compiled_ != nullptr && rows <= 2 * compiled_->rows_at_compile + 16 &&
        compiled_->rows_at_compile <= 2 * rows + 16) {
      return compiled_;
    }
  }
  auto fresh = std::make_shared<Compiled>();
  fresh->program = vm::CompileFilter(bound->expr.get(), table);
  fresh->rows_at_compile = rows;
  std::lock_guard<std::mutex> lock(mu_);
  compiled_ = fresh;
  return fresh;
}

}  // namespace api_internal

namespace {

const index::Table& TableFor(const ConditionImpl& c, const index::Snapshot& s) {
  return c.bound->collection == check::Collection::kModules ? s.modules() : s.devices();
}

StatusOr<std::shared_ptr<const ConditionImpl>> CompileImpl(std::string_view text,
                                                           const CompileOptions& options) {
  Source source("<condition>", std::string(text));
  check::BindOptions bind;
  bind.strict = options.strict;
  Result<check::BoundCondition> bound = tools::CompileCondition(source, bind);
  if (!bound.ok()) return api_internal::FromDiagnostics(bound.diagnostics(), source);
  auto impl = std::make_shared<ConditionImpl>();
  impl->text = std::string(text);
  impl->options = options;
  impl->bound = std::make_shared<const check::BoundCondition>(std::move(bound).value());
  return std::shared_ptr<const ConditionImpl>(std::move(impl));
}

}  // namespace

Condition::Condition(std::shared_ptr<const ConditionImpl> impl) : impl_(std::move(impl)) {}

StatusOr<Condition> Condition::Compile(std::string_view text, const CompileOptions& options) {
  return Guard([&]() -> StatusOr<Condition> {
    StatusOr<std::shared_ptr<const ConditionImpl>> impl = CompileImpl(text, options);
    if (!impl.ok()) return impl.status();
    return Condition(std::move(impl).value());
  });
}

const std::string& Condition::text() const { return impl_->text; }

Collection Condition::collection() const {
  return api_internal::ToPublic(impl_->bound->collection);
}

bool Condition::selects_all() const { return impl_->bound->all; }

StatusOr<RowSet> Condition::Evaluate(const Snapshot& snapshot) const {
  return Guard([&]() -> StatusOr<RowSet> {
    const index::Table& table = TableFor(*impl_, snapshot.impl_->snapshot);
    auto rows = std::make_shared<RowSetImpl>();
    rows->snapshot = snapshot.impl_;
    rows->collection = impl_->bound->collection;
    if (impl_->bound->all) {
      rows->rows = table.live();
    } else {
      rows->rows = vm::Run(impl_->ProgramFor(table)->program, table);
    }
    return RowSet(std::move(rows));
  });
}

StatusOr<std::vector<std::string>> Condition::TargetIds(const Snapshot& snapshot) const {
  StatusOr<RowSet> rows = Evaluate(snapshot);
  if (!rows.ok()) return rows.status();
  return rows->Ids();
}

StatusOr<std::string> Condition::Explain(const Snapshot& snapshot) const {
  return Guard([&]() -> StatusOr<std::string> {
    const index::Table& table = TableFor(*impl_, snapshot.impl_->snapshot);
    return vm::Explain(vm::CompileFilter(impl_->bound->expr.get(), table));
  });
}

StatusOr<std::string> Condition::Plan(const Snapshot& snapshot) const {
  return Guard([&]() -> StatusOr<std::string> {
    const index::Table& table = TableFor(*impl_, snapshot.impl_->snapshot);
    return vm::Plan(vm::CompileFilter(impl_->bound->expr.get(), table), table);
  });
}

std::string Condition::BoundText() const {
  try {
    return check::Print(*impl_->bound);
  } catch (...) {
    return std::string();
  }
}

// ---- ConditionCache ----

namespace api_internal {

struct CacheImpl {
  struct Entry {
    std::string key;
    Condition condition;
  };
  size_t capacity = 0;
  mutable std::mutex mu;
  std::list<Entry> lru;  // most recently used first
  std::unordered_map<std::string_view, std::list<Entry>::iterator> by_key;  // views into lru
  uint64_t hits = 0, misses = 0, evictions = 0;
};

}  // namespace api_internal

namespace {

// The cache key: options first (one byte), then the text.
std::string KeyOf(std::string_view text, const CompileOptions& options) {
  std::string key;
  key.reserve(text.size() + 1);
  key.push_back(options.strict ? 's' : 'd');
  key.append(text);
  return key;
}

}  // namespace

ConditionCache::ConditionCache(size_t capacity)
    : impl_(std::make_unique<api_internal::CacheImpl>()) {
  impl_->capacity = capacity == 0 ? 1 : capacity;
}

ConditionCache::~ConditionCache() = default;

StatusOr<Condition> ConditionCache::Get(std::string_view text, const CompileOptions& options) {
  return Guard([&]() -> StatusOr<Condition> {
    std::string key = KeyOf(text, options);
    {
      std::lock_guard<std::mutex> lock(impl_->mu);
      auto it = impl_->by_key.find(key);
      if (it != impl_->by_key.end()) {
        ++impl_->hits;
        impl_->lru.splice(impl_->lru.begin(), impl_->lru, it->second);
        return it->second->condition;
      }
      ++impl_->misses;
    }
    // Compile outside the lock: a slow compilation never blocks hits.
    StatusOr<Condition> compiled = Condition::Compile(text, options);
    if (!compiled.ok()) return compiled;
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->by_key.find(key);
    if (it != impl_->by_key.end()) {  // another thread compiled it meanwhile: keep one
      impl_->lru.splice(impl_->lru.begin(), impl_->lru, it->second);
      return it->second->condition;
    }
    impl_->lru.push_front(api_internal::CacheImpl::Entry{std::move(key), *compiled});
    impl_->by_key.emplace(impl_->lru.front().key, impl_->lru.begin());
    while (impl_->lru.size() > impl_->capacity) {
      impl_->by_key.erase(impl_->lru.back().key);
      impl_->lru.pop_back();
      ++impl_->evictions;
    }
    return compiled;
  });
}

ConditionCache::Stats ConditionCache::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Stats s;
  s.hits = impl_->hits;
  s.misses = impl_->misses;
  s.evictions = impl_->evictions;
  s.size = impl_->lru.size();
  s.capacity = impl_->capacity;
  return s;
}

void ConditionCache::Clear() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->by_key.clear();
  impl_->lru.clear();
}

}  // namespace twinq
