// Query: full SELECT queries over a snapshot, with paging.
#include "twinq/query.h"

#include "api/internal.h"
#include "engine/common/paging.h"
#include "engine/common/value.h"
#include "engine/vm/compiler.h"
#include "engine/vm/query.h"
#include "tools/frontend.h"

namespace twinq {

using api_internal::Guard;

namespace api_internal {
struct QueryImpl {
  std::string text;
  std::shared_ptr<const check::BoundQuery> bound;
};
}  // namespace api_internal

Query::Query(std::shared_ptr<const api_internal::QueryImpl> impl) : impl_(std::move(impl)) {}

StatusOr<Query> Query::Compile(std::string_view text, const CompileOptions& options) {
  return Guard([&]() -> StatusOr<Query> {
    Source source("<query>", std::string(text));
    check::BindOptions bind;
    bind.strict = options.strict;
    Result<check::BoundQuery> bound = tools::CompileQuery(source, bind);
    if (!bound.ok()) return api_internal::FromDiagnostics(bound.diagnostics(), source);
    auto impl = std::make_shared<api_internal::QueryImpl>();
    impl->text = std::string(text);
    impl->bound = std::make_shared<const check::BoundQuery>(std::move(bound).value());
    return Query(std::move(impl));
  });
}

const std::string& Query::text() const { return impl_->text; }

Collection Query::collection() const { return api_internal::ToPublic(impl_->bound->collection); }

StatusOr<QueryPage> Query::Run(const Snapshot& snapshot, const PageOptions& page) const {
  return Guard([&]() -> StatusOr<QueryPage> {
    PageRequest request;
    request.page_size = page.page_size;
    request.continuation = page.continuation;
    Expected<QueryResult> r = vm::RunQuery(*impl_->bound, snapshot.impl_->snapshot, request);
    if (!r.ok()) return Status(ErrorCode::kInvalidArgument, r.error().message);
    QueryPage out;
    out.rows.reserve(r->rows.size());
    for (const Value& row : r->rows) out.rows.push_back(ToJson(row));
    out.continuation = std::move(r->continuation);
    return out;
  });
}

StatusOr<std::string> Query::Explain(const Snapshot& snapshot) const {
  return Guard([&]() -> StatusOr<std::string> {
    const index::Table& table = vm::TableOf(snapshot.impl_->snapshot, impl_->bound->collection);
    return vm::Explain(vm::CompileFilter(impl_->bound->where.get(), table));
  });
}

StatusOr<std::string> Query::Plan(const Snapshot& snapshot) const {
  return Guard([&]() -> StatusOr<std::string> {
    const index::Table& table = vm::TableOf(snapshot.impl_->snapshot, impl_->bound->collection);
    return vm::Plan(vm::CompileFilter(impl_->bound->where.get(), table), table);
  });
}

}  // namespace twinq
