#include "tests/runner/engines.h"

#include "engine/ref/query.h"
#include "engine/vm/query.h"
#include "index/fleet.h"
#include "tools/frontend.h"

namespace twinq::testing {

namespace {

std::vector<std::string> ShortDiagnostics(const Diagnostics& ds, const Source& source) {
  std::vector<std::string> out;
  for (const Diagnostic& d : ds) out.push_back(RenderShort(d, source));
  return out;
}

class RefEngine : public Engine {
 public:
  RefEngine(std::string name, bool fold) : name_(std::move(name)), fold_(fold) {}

  std::string name() const override { return name_; }
  void Load(const TwinSet& twins) override { twins_ = &twins; }

  ref::Documents Docs() const { return {twins_->devices, twins_->modules, {}}; }

  Outcome Targets(const std::string& text, bool strict) override {
    Outcome out;
    Source source("<condition>", text);
    auto bound = tools::CompileCondition(source, Options(strict));
    if (!bound.ok()) {
      out.diagnostics = ShortDiagnostics(bound.diagnostics(), source);
      return out;
    }
    out.lines = ref::TargetIds(*bound, Docs());
    return out;
  }

  Outcome Query(const std::string& text, bool strict, size_t page_size) override {
    Outcome out;
    Source source("<query>", text);
    auto bound = tools::CompileQuery(source, Options(strict));
    if (!bound.ok()) {
      out.diagnostics = ShortDiagnostics(bound.diagnostics(), source);
      return out;
    }
    PageRequest page;
    page.page_size = page_size;
    for (size_t n = 0;; ++n) {
      auto result = ref::RunQuery(*bound, Docs(), page);
      if (!result.ok()) {
        out.error = result.error().message;
        return out;
      }
      if (n > 0) out.lines.push_back("-- page");
      for (const Value& row : result->rows) out.lines.push_back(ToJson(row));
      if (result->continuation.empty()) break;
      page.continuation = result->continuation;
      if (n > 100000) {
        out.error = "paging did not end";
        return out;
      }
    }
    return out;
  }

 private:
  check::BindOptions Options(bool strict) const {
    check::BindOptions o;
    o.strict = strict;
    o.fold = fold_;
    return o;
  }

  std::string name_;
  bool fold_;
  const TwinSet* twins_ = nullptr;
};

// The VM over the columnar index (optimised, or with operand ordering and short-circuits off).
class VmEngine : public Engine {
 public:
  VmEngine(std::string name, bool optimize) : name_(std::move(name)) {
    options_.optimize = optimize;
  }

  std::string name() const override { return name_; }
  void Load(const TwinSet& twins) override { fleet_ = std::make_unique<index::Fleet>(twins); }

  Outcome Targets(const std::string& text, bool strict) override {
    Outcome out;
    Source source("<condition>", text);
    check::BindOptions bind;
    bind.strict = strict;
    auto bound = tools::CompileCondition(source, bind);
    if (!bound.ok()) {
      out.diagnostics = ShortDiagnostics(bound.diagnostics(), source);
      return out;
    }
    out.lines = vm::TargetIds(*bound, fleet_->snapshot(), options_);
    return out;
  }

  Outcome Query(const std::string& text, bool strict, size_t page_size) override {
    Outcome out;
    Source source("<query>", text);
    check::BindOptions bind;
    bind.strict = strict;
    auto bound = tools::CompileQuery(source, bind);
    if (!bound.ok()) {
      out.diagnostics = ShortDiagnostics(bound.diagnostics(), source);
      return out;
    }
    PageRequest page;
    page.page_size = page_size;
    index::Snapshot snap = fleet_->snapshot();
    for (size_t n = 0;; ++n) {
      auto result = vm::RunQuery(*bound, snap, page, options_);
      if (!result.ok()) {
        out.error = result.error().message;
        return out;
      }
      if (n > 0) out.lines.push_back("-- page");
      for (const Value& row : result->rows) out.lines.push_back(ToJson(row));
      if (result->continuation.empty()) break;
      page.continuation = result->continuation;
      if (n > 100000) {
        out.error = "paging did not end";
        return out;
      }
    }
    return out;
  }

 private:
  std::string name_;
  vm::CompileOptions options_;
  std::unique_ptr<index::Fleet> fleet_ = std::make_unique<index::Fleet>();
};

}  // namespace

std::vector<std::string> AllEngineNames() { return {"ref", "ref-nofold", "vm", "vm-noopt"}; }

std::vector<std::unique_ptr<Engine>> MakeEngines(const std::vector<std::string>& names) {
  std::vector<std::unique_ptr<Engine>> out;
  for (const std::string& n : names) {
    if (n == "ref") out.push_back(std::make_unique<RefEngine>("ref", true));
    if (n == "ref-nofold") out.push_back(std::make_unique<RefEngine>("ref-nofold", false));
    if (n == "vm") out.push_back(std::make_unique<VmEngine>("vm", true));
    if (n == "vm-noopt") out.push_back(std::make_unique<VmEngine>("vm-noopt", false));
  }
  return out;
}

}  // namespace twinq::testing
