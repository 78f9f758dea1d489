// fuzz_patch: the patch splice fast path (index/twin_splice.h) against the whole-document path.
//
// Input: a twin and a patch, as two pieces of text separated by the first newline; the first byte
// picks the If-Match. Checks:
//  - ScanTwinSections never crashes on any text (the raw twin text, whatever it is);
//  - when the twin text parses as a JSON object and the scan succeeds, each span found holds
//    exactly the value the parsed object has there (etag, version, tags, properties.desired), and
//    each member the scan reports absent is absent; ScanObjectMembers, when it accepts the tags,
//    reports the members of the parsed tags, in order, each with its value's span; the members
//    the scan lists for tags and desired are what ScanObjectMembers reports for their spans;
//  - a fleet holding that twin with the fast path on and one with it off give the same outcome
//    for the patch: both fail with the same message, or both succeed with byte-identical
//    serialised fleets (documents and every column); so does a third fleet that computes the
//    batch's splices ahead on a second thread (ApplyOptions);
//  - a TableStream given the twin with its text as the input spells it (the ingest of
//    `twinq index build`) stores the twin's printed form, and keeps a view of the text exactly
//    when the text is that form; given as the tokens the ingest reads (json_reader.h), with or
//    without its text, the twin makes the table its Value makes (documents and every column);
//  - the ingest's On-Demand reading of the twin line (json_reader.h, OnDemandTokensForTesting)
//    takes it only if ParseJson (the DOM) reads it, and gives the same value; it says the line
//    is spelled as printed (`printed`, also as the token sink gets it) only where it is.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "engine/common/json_reader.h"
#include "engine/common/value.h"
#include "index/fleet.h"
#include "index/table.h"
#include "index/twin_splice.h"

namespace {

using twinq::Value;
using twinq::index::JsonSpan;

[[noreturn]] void Fail(const char* what, std::string_view a, std::string_view b) {
  std::fprintf(stderr, "fuzz_patch: %s\n  fast/scan: %.*s\n  slow/json: %.*s\n", what,
               static_cast<int>(a.size()), a.data(), static_cast<int>(b.size()), b.data());
  std::abort();
}

// The span agrees with the value the parsed object holds there (nullptr: absent).
void CheckSpan(std::string_view text, const JsonSpan& span, const Value* expected,
               const char* name) {
  if (!span.found()) {
    if (expected != nullptr) Fail(name, "<absent>", twinq::ToJson(*expected));
    return;
  }
  if (expected == nullptr) Fail(name, span.in(text), "<absent>");
  twinq::Expected<Value> v = twinq::ParseJson(span.in(text), "span");
  if (!v.ok() || !(*v == *expected) || twinq::ToJson(*v) != twinq::ToJson(*expected)) {
    Fail(name, span.in(text), twinq::ToJson(*expected));
  }
}

// The members a scan listed for a section are exactly what ScanObjectMembers says of its span.
void CheckListed(std::string_view text, const twinq::index::JsonSpan& span,
                 const std::optional<std::vector<twinq::index::JsonMember>>& listed,
                 const char* name) {
  auto members = span.found() ? twinq::index::ScanObjectMembers(text, span) : std::nullopt;
  if (listed.has_value() != members.has_value()) Fail(name, span.in(text), "listed or not");
  if (!listed) return;
  if (listed->size() != members->size()) Fail(name, span.in(text), "member count");
  for (size_t i = 0; i < listed->size(); ++i) {
    const twinq::index::JsonMember &a = (*listed)[i], &b = (*members)[i];
    if (a.key != b.key || a.member.begin != b.member.begin || a.member.end != b.member.end ||
        a.value.begin != b.value.begin || a.value.end != b.value.end) {
      Fail(name, a.member.in(text), b.member.in(text));
    }
  }
}

void CheckScan(std::string_view text) {
  std::optional<twinq::index::TwinSections> s = twinq::index::ScanTwinSections(text);
  if (!s) return;
  CheckListed(text, s->tags, s->tag_members, "listed tags");
  CheckListed(text, s->desired, s->desired_members, "listed desired");
  twinq::Expected<Value> doc = twinq::ParseJson(text, "twin");
  if (!doc.ok() || !doc->is_object()) return;  // the scan may accept what ParseJson refuses
  const Value* props = doc->Find("properties");
  const Value* desired = props != nullptr && props->is_object() ? props->Find("desired") : nullptr;
  CheckSpan(text, s->etag, doc->Find("etag"), "etag");
  CheckSpan(text, s->version, doc->Find("version"), "version");
  CheckSpan(text, s->tags, doc->Find("tags"), "tags");
  CheckSpan(text, s->desired, desired, "desired");
  // The members of the tags, as the fast path reads them: the same keys in the same order, each
  // value's span holding that member's value.
  const Value* tags = doc->Find("tags");
  if (!s->tags.found() || tags == nullptr || !tags->is_object()) return;
  auto members = twinq::index::ScanObjectMembers(text, s->tags);
  if (!members) return;
  const twinq::Object& o = tags->as_object();
  if (members->size() != o.size()) Fail("tag member count", s->tags.in(text), twinq::ToJson(*tags));
  for (size_t i = 0; i < o.size(); ++i) {
    if ((*members)[i].key != o[i].first) Fail("tag member key", (*members)[i].key, o[i].first);
    CheckSpan(text, (*members)[i].value, &o[i].second, "tag member");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 4096) return 0;
  uint8_t pick = data[0];
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  size_t nl = input.find('\n');
  std::string_view twin_text = input.substr(0, nl);
  std::string_view patch_text = nl == std::string_view::npos ? "" : input.substr(nl + 1);
  CheckScan(twin_text);
  CheckScan(input);

  twinq::Expected<Value> twin = twinq::ParseJson(twin_text, "twin");
  twinq::Expected<Value> patch = twinq::ParseJson(patch_text, "patch");
  // The ingest reads an NDJSON line with On-Demand first: only a line the DOM reads, as it does.
  if (std::optional<twinq::OnDemandLine> read = twinq::OnDemandTokensForTesting(twin_text)) {
    if (!twin.ok()) Fail("a line On-Demand took", twin_text, twin.error().message);
    if (read->print != twinq::ToJson(*twin)) {
      Fail("On-Demand's tokens", read->print, twinq::ToJson(*twin));
    }
    // It found the line (without trailing whitespace) spelled as printed only where it is.
    std::string_view line = twin_text;
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) {
      line.remove_suffix(1);
    }
    if (read->printed && line != read->print) Fail("printed", line, read->print);
  }
  if (!twin.ok() || !twin->is_object() || !patch.ok()) return 0;
  const Value* device = twin->Find("deviceId");
  const Value* module = twin->Find("moduleId");
  if (device == nullptr || !device->is_string() || device->as_string().empty()) return 0;
  if (module != nullptr && (!module->is_string() || module->as_string().empty())) return 0;
  std::string stored = twinq::ToJson(*twin);
  CheckScan(stored);  // the form the index stores

  // An ingest that keeps its input (`twinq index build`) stores the input's text itself only
  // where it is the stored form: the document is the stored form either way. The ingest reads
  // the twin as tokens, not as a Value: the same table either way.
  {
    auto input = std::make_shared<const std::string>(twin_text);
    twinq::index::TableStream stream(module != nullptr);
    stream.Add(*twin, *input, input);
    std::shared_ptr<const twinq::index::Table> table = stream.Finish();
    std::string_view doc = table->doc_json(0);
    if (doc != stored) Fail("document kept from the input", doc, stored);
    if ((doc.data() == input->data()) != (*input == stored)) {
      Fail("a view of the input where the text is not the stored form, or no view where it is", doc,
           stored);
    }
    const std::string want = twinq::index::TableContents(*table);
    size_t twins = 0;
    twinq::Expected<size_t> n = twinq::VisitTwins(
        twin_text, "twin",
        [&](const twinq::JsonToken* tokens, bool is_module, std::string_view spelled,
            bool printed) {
          ++twins;
          if (printed && spelled != stored) Fail("tokens: known printed", spelled, stored);
          if (is_module != (module != nullptr)) Fail("tokens: module", "", "");
          if (twinq::TokensToValue(tokens) != *twin) Fail("tokens: value", "", "");
          // The text lives during this call only, and so does the table that views it.
          std::shared_ptr<const void> text(std::make_shared<int>(0));
          for (bool with_text : {false, true}) {
            twinq::index::TableStream tokened(is_module);
            if (with_text) {
              tokened.Add(tokens, spelled, text, printed);
            } else {
              tokened.Add(tokens);
            }
            std::shared_ptr<const twinq::index::Table> t = tokened.Finish();
            if (twinq::index::TableContents(*t) != want)
              Fail("the table of the tokens", twinq::index::TableContents(*t), want);
            if (with_text && (t->doc_json(0).data() == spelled.data()) != (spelled == stored)) {
              Fail("tokens: a view where the text is not the stored form, or none where it is",
                   t->doc_json(0), stored);
            }
          }
        });
    if (!n.ok() || twins != 1) Fail("tokens: the twin", n.ok() ? "" : n.error().message, "");
  }

  twinq::index::Fleet fast, slow;
  if (!fast.LoadTwinsText(stored, "twin").ok() || !slow.LoadTwinsText(stored, "twin").ok()) {
    return 0;
  }
  slow.set_splice_patches(false);
  twinq::index::Mutation m;
  m.kind = twinq::index::Mutation::Kind::kPatch;
  m.device_id = device->as_string();
  m.module_id = module != nullptr ? module->as_string() : "";
  m.patch = *patch;
  const Value* etag = twin->Find("etag");
  switch (pick % 3) {
    case 0:
      m.if_match = "*";
      break;
    case 1:
      m.if_match = etag != nullptr && etag->is_string() ? "\"" + etag->as_string() + "\"" : "x";
      break;
    default:
      m.if_match = "\"AAAAAAAAAAE=\"";
      break;
  }
  // Twice in one batch when asked: the second patch sees the first (the spliced change is redone
  // as a whole document).
  std::vector<twinq::index::Mutation> batch = {m};
  if (pick & 0x80) batch.push_back(m);
  const std::string now = "2026-11-27T00:00:00.0000000Z";
  twinq::Expected<uint64_t> f = fast.Apply(batch, now);
  twinq::Expected<uint64_t> s = slow.Apply(batch, now);
  // The same batch with its splices computed ahead on a second thread: the same outcome.
  twinq::index::Fleet par;
  if (!par.LoadTwinsText(stored, "twin").ok()) return 0;
  twinq::index::ApplyOptions two;
  two.threads = 2;
  two.parallel_min_batch = 1;
  twinq::Expected<uint64_t> p = par.Apply(batch, now, two);
  if (p.ok() != f.ok() || (!p.ok() && p.error().message != f.error().message) ||
      (p.ok() && par.Serialize() != fast.Serialize())) {
    Fail("splices computed ahead", p.ok() ? "ok" : p.error().message,
         f.ok() ? "ok" : f.error().message);
  }
  // The batch prepared before it is applied (a twin job's pipeline, Fleet::StartPrepare) and,
  // when asked, the twin written by another batch in between (which makes the prepared splice
  // stale): the same outcome as the same writes without preparing.
  twinq::index::Fleet piped, plain;
  if (!piped.LoadTwinsText(stored, "twin").ok() || !plain.LoadTwinsText(stored, "twin").ok()) {
    return 0;
  }
  twinq::index::PreparedBatch prepared = piped.StartPrepare(batch.size(), now);
  piped.PrepareRange(batch, 0, batch.size(), &prepared);
  if (pick & 0x40) {
    twinq::index::Mutation first = m;
    first.if_match = "*";
    const std::string earlier = "2026-11-26T00:00:00.0000000Z";
    twinq::Expected<uint64_t> e1 = piped.Apply({first}, earlier);
    twinq::Expected<uint64_t> e2 = plain.Apply({first}, earlier);
    if (e1.ok() != e2.ok()) Fail("write before the prepared batch", "", "");
  }
  twinq::Expected<uint64_t> q = piped.Apply(batch, now, {}, &prepared);
  twinq::Expected<uint64_t> r = plain.Apply(batch, now);
  if (q.ok() != r.ok() || (!q.ok() && q.error().message != r.error().message) ||
      (q.ok() && piped.Serialize() != plain.Serialize())) {
    Fail("splices prepared before the batch", q.ok() ? "ok" : q.error().message,
         r.ok() ? "ok" : r.error().message);
  }
  if (f.ok() != s.ok()) {
    Fail("outcome", f.ok() ? "ok" : f.error().message, s.ok() ? "ok" : s.error().message);
  }
  if (!f.ok()) {
    if (f.error().message != s.error().message) {
      Fail("error message", f.error().message, s.error().message);
    }
    return 0;
  }
  std::string fb = fast.Serialize(), sb = slow.Serialize();
  if (fb != sb) {
    const auto& ft = fast.snapshot().devices().row_count() > 0 ? fast.snapshot().devices()
                                                               : fast.snapshot().modules();
    const auto& st = slow.snapshot().devices().row_count() > 0 ? slow.snapshot().devices()
                                                               : slow.snapshot().modules();
    Fail("serialised fleets differ", ft.doc_json(0), st.doc_json(0));
  }
  return 0;
}
