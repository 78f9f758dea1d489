#include "index/fleet.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "index/column_codec.h"
#include "index/parallel.h"
#include "index/prefetch.h"
#include "index/twin_splice.h"

namespace twinq::index {

// ---- table (de)serialisation -------------------------------------------------------------------

class TableCodec {
 public:
  // A table in the file (format version 3): a head (the kind, the row count, the live rows, the
  // id order, then three arrays of u32 lengths, one entry per row: documents, device ids, module
  // ids; a deleted row's document is empty, and it keeps its ids as the table does), the rows'
  // texts (the device ids, the module ids and the documents, each kind back to back in row
  // order), then the columns. A reader checks the ids without touching the documents, and keeps
  // the documents where they are (Fleet::Open).
  //
  // Written in three parts so that a save can stream the texts (nearly all of a file: the
  // documents of 1M generated twins are 2.3 GB) from the table instead of copying them into one
  // buffer: the head and the columns are serialized into memory, the texts are visited.
  struct Parts {
    std::string head;
    uint64_t text_bytes = 0;  // of the rows' texts
    std::string columns;
    uint64_t size() const { return head.size() + text_bytes + columns.size(); }
  };

  static Parts Prepare(const Table& t) {
    Parts p;
    std::string& out = p.head;
    out.push_back(t.modules_ ? 1 : 0);
    PutU32(&out, t.row_count_);
    std::string live;
    t.live_->AppendTo(&live);
    PutBytes(&out, live);
    PutU64(&out, t.order_->size());
    out.append(reinterpret_cast<const char*>(t.order_->data()), t.order_->size() * 4);
    out.reserve(out.size() + size_t{12} * t.row_count_);
    EachRow(t, [&](const DocChunk& c, uint32_t k) {
      PutU32(&out, static_cast<uint32_t>(c.json[k].size()));
      p.text_bytes += c.json[k].size();
    });
    EachRow(t, [&](const DocChunk& c, uint32_t k) {
      PutU32(&out, static_cast<uint32_t>(c.ids->device_id[k].size()));
      p.text_bytes += c.ids->device_id[k].size();
    });
    EachRow(t, [&](const DocChunk& c, uint32_t k) {
      PutU32(&out, static_cast<uint32_t>(c.ids->module_id[k].size()));
      p.text_bytes += c.ids->module_id[k].size();
    });
    PutU32(&p.columns, static_cast<uint32_t>(t.columns_.size()));
    for (const auto& c : t.columns_) ColumnCodec::Write(*c, &p.columns);
    return p;
  }

  // The rows' texts in file order, to `emit(std::string_view)`.
  template <class Emit>
  static void Texts(const Table& t, Emit&& emit) {
    EachRow(t, [&](const DocChunk& c, uint32_t k) { emit(c.ids->device_id[k]); });
    EachRow(t, [&](const DocChunk& c, uint32_t k) { emit(c.ids->module_id[k]); });
    EachRow(t, [&](const DocChunk& c, uint32_t k) { emit(c.json[k].view()); });
  }

  template <class F>
  static void EachRow(const Table& t, F&& f) {
    for (uint32_t first = 0; first < t.row_count_; first += kDocChunkRows) {
      const DocChunk& c = t.chunk_of(first);
      uint32_t end = std::min<uint32_t>(kDocChunkRows, t.row_count_ - first);
      for (uint32_t k = 0; k < end; ++k) f(c, k);
    }
  }

  // `owner`: when set, it owns the bytes `in` views, and the documents are kept as views into
  // them (no copy); otherwise each document is copied. `*columns_at` receives where the columns
  // start in `in` (the caller may release the pages of the columns: they are copied out).
  static bool Read(std::string_view* in, std::shared_ptr<const Table>* out, std::string* error,
                   uint32_t version, const std::shared_ptr<const void>& owner,
                   const char** columns_at) {
    auto t = std::shared_ptr<Table>(new Table());
    auto fail = [&](const std::string& what) {
      *error = what;
      return false;
    };
    if (in->empty() || static_cast<unsigned char>((*in)[0]) > 1) return fail("bad table header");
    t->modules_ = (*in)[0] == 1;
    in->remove_prefix(1);
    std::string_view live;
    size_t consumed = 0;
    if (!GetU32(in, &t->row_count_) || !GetBytes(in, &live) ||
        !Bitmap::Read(live, &t->WritableLive(), &consumed) || consumed != live.size()) {
      return fail("bad table liveness");
    }
    uint64_t order_size;
    if (!GetU64(in, &order_size) || order_size != t->live_->Cardinality() ||
        order_size > in->size() / 4) {
      return fail("bad table order");
    }
    auto order = std::make_shared<std::vector<uint32_t>>(order_size);
    if (order_size > 0)
      std::memcpy(order->data(), in->data(), order_size * 4);  // data() may be null
    in->remove_prefix(order_size * 4);
    for (uint32_t row : *order) {
      if (!t->live_->Contains(row)) return fail("order names a deleted row");
    }
    t->order_ = std::move(order);
    if (!t->live_->Empty() && t->live_->Maximum() >= t->row_count_) {
      return fail("live row out of range");
    }
    // The rows' documents and ids, as views into `in` (checked first, then stored a chunk at a
    // time: one tree walk per 16 rows).
    // Each row takes at least its three lengths: a row count beyond that is refused before
    // anything is allocated for it.
    if (t->row_count_ > in->size() / 12) return fail("truncated documents");
    bool ok =
        version >= 3 ? ReadRows(in, t.get(), owner, error) : ReadRowsV1(in, t.get(), owner, error);
    if (!ok) return false;
    *columns_at = in->data();
    uint32_t columns;
    if (!GetU32(in, &columns) || columns > in->size()) return fail("bad column count");
    t->columns_.reserve(columns);
    for (uint32_t i = 0; i < columns; ++i) {
      std::shared_ptr<const Column> c;
      std::string why;
      if (!ColumnCodec::Read(in, &c, &why, t->row_count_, version, owner)) {
        return fail(fmt::format("column {}: {}", i, why));
      }
      t->columns_.push_back(std::move(c));
    }
    t->BuildCatalog();
    if (t->exact_->size() != t->columns_.size()) return fail("duplicate column paths");
    *out = std::move(t);
    return true;
  }

 private:
  struct RowText {
    std::string_view json, device, module;
  };

  // Checks the rows' texts (`text(row)` gives them) and stores them in `t`: documents only in
  // live rows, order() strictly by id.
  template <class Text>
  static bool StoreRows(Table* t, const std::shared_ptr<const void>& owner, std::string* error,
                        Text&& text) {
    for (uint32_t row = 0; row < t->row_count_; ++row) {
      if (text(row).json.empty() == t->live_->Contains(row)) {
        *error = "document and liveness disagree";
        return false;
      }
    }
    // FindRow binary-searches order(): it must hold each live row once, strictly by id.
    for (size_t i = 1; i < t->order_->size(); ++i) {
      RowText a = text((*t->order_)[i - 1]);
      RowText b = text((*t->order_)[i]);
      if (!(std::make_pair(a.device, a.module) < std::make_pair(b.device, b.module))) {
        *error = "order is not strictly by id";
        return false;
      }
    }
    for (uint32_t first = 0; first < t->row_count_; first += kDocChunkRows) {
      uint32_t last = std::min<uint32_t>(first + kDocChunkRows, t->row_count_) - 1;
      size_t slot;
      DocChunk& chunk = t->WritableChunk(first, &slot);
      DocIds& ids = Table::WritableIds(chunk);
      for (uint32_t row = first; row <= last; ++row) {
        RowText r = text(row);
        size_t k = row - first;
        if (!r.json.empty()) {
          chunk.json[k] = owner ? DocText(owner, r.json) : DocText::Copy(r.json);
        }
        ids.device_id[k] = r.device;
        ids.module_id[k] = r.module;
      }
    }
    return true;
  }

  // Format version 3: the length arrays, then the ids and documents back to back.
  static bool ReadRows(std::string_view* in, Table* t, const std::shared_ptr<const void>& owner,
                       std::string* error) {
    const size_t rows = t->row_count_;
    const char* lengths = in->data();
    in->remove_prefix(12 * rows);
    auto length = [&](size_t which, size_t row) {
      uint32_t v;
      std::memcpy(&v, lengths + (which * rows + row) * 4, 4);
      return uint64_t{v};
    };
    // Where each row's ids and document start in their runs.
    std::vector<uint64_t> device_at(rows + 1), module_at(rows + 1), json_at(rows + 1);
    for (size_t row = 0; row < rows; ++row) {
      json_at[row + 1] = json_at[row] + length(0, row);
      device_at[row + 1] = device_at[row] + length(1, row);
      module_at[row + 1] = module_at[row] + length(2, row);
    }
    const uint64_t devices = device_at[rows], modules = module_at[rows], json = json_at[rows];
    if (devices > in->size() || modules > in->size() - devices ||
        json > in->size() - devices - modules) {
      *error = "truncated documents";
      return false;
    }
    const char* device_text = in->data();
    const char* module_text = device_text + devices;
    const char* json_text = module_text + modules;
    in->remove_prefix(devices + modules + json);
    return StoreRows(t, owner, error, [&](uint32_t row) {
      return RowText{
          std::string_view(json_text + json_at[row], json_at[row + 1] - json_at[row]),
          std::string_view(device_text + device_at[row], device_at[row + 1] - device_at[row]),
          std::string_view(module_text + module_at[row], module_at[row + 1] - module_at[row])};
    });
  }

  // Format versions 1 and 2: for each row, its document, device id and module id (u32 length +
  // bytes each).
  static bool ReadRowsV1(std::string_view* in, Table* t, const std::shared_ptr<const void>& owner,
                         std::string* error) {
    std::vector<RowText> rows(t->row_count_);
    for (RowText& r : rows) {
      if (!GetBytes(in, &r.json) || !GetBytes(in, &r.device) || !GetBytes(in, &r.module)) {
        *error = "truncated documents";
        return false;
      }
    }
    return StoreRows(t, owner, error, [&](uint32_t row) { return rows[row]; });
  }
};

namespace {

constexpr char kMagic[8] = {'T', 'W', 'I', 'N', 'Q', 'I', 'D', 'X'};
// Version 2 changed only the checksum (four interleaved lanes: the one-lane version 1 was a chain
// of dependent multiplies, about 1 s for a 1M-device file). Version 3 changed the layout of the
// rows (lengths apart from the texts, ids apart from documents: TableCodec::Write) and of the
// dictionaries (stored encoded, Dictionary::encoded()), so that loading touches neither the
// documents nor rebuilds a dictionary. Versions 1 and 2 are still read.
constexpr uint32_t kFormatVersion = 3;
constexpr size_t kHeaderBytes = 8 + 4 + 8 + 8;

// Version 1: a 64-bit checksum over 8-byte words (detects truncation and corruption, not
// tampering). Version 2 (and 3): the same step on four independent lanes (word k of each 32 bytes
// goes to lane k), folded at the end, so the multiplies overlap.
//
// Both in streaming form, so Fleet::Open can checksum the file as it reads it in pieces:
// Checksum(version, data) == Finish(Blocks(Start(version, data.size()), head), rest) for any split
// data = head + rest where head.size() is a multiple of 32.
struct ChecksumState {
  uint32_t version = 2;
  uint64_t h[4] = {0, 0, 0, 0};
};

ChecksumState ChecksumStart(uint32_t version, uint64_t size) {
  ChecksumState s;
  s.version = version;
  s.h[0] = 0x9E3779B97F4A7C15ULL ^ size;
  if (version != 1) {
    s.h[1] = 0xBF58476D1CE4E5B9ULL;
    s.h[2] = 0x94D049BB133111EBULL;
    s.h[3] = 0xD6E8FEB86659FD93ULL;
  }
  return s;
}

inline void ChecksumWord(uint64_t* h, const char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  *h = (*h ^ w) * 0xFF51AFD7ED558CCDULL;
  *h ^= *h >> 32;
}

// The whole 32-byte blocks at the front of `data` (version 1: every whole 8-byte word); returns
// how many bytes they took.
size_t ChecksumBlocks(ChecksumState* s, std::string_view data) {
  size_t i = 0;
  if (s->version == 1) {
    for (; i + 8 <= data.size(); i += 8) ChecksumWord(&s->h[0], data.data() + i);
    return i;
  }
  for (; i + 32 <= data.size(); i += 32) {
    for (int k = 0; k < 4; ++k) ChecksumWord(&s->h[k], data.data() + i + 8 * k);
  }
  return i;
}

uint64_t ChecksumFinish(ChecksumState s, std::string_view rest) {
  size_t i = ChecksumBlocks(&s, rest);
  for (int k = 0; i + 8 <= rest.size(); i += 8) {
    ChecksumWord(&s.h[k], rest.data() + i);
    if (s.version != 1) ++k;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, rest.data() + i, rest.size() - i);
  uint64_t r = s.h[0];
  if (s.version != 1) {
    for (int k = 1; k < 4; ++k) r = (r ^ s.h[k]) * 0xC4CEB9FE1A85EC53ULL;
  }
  r = (r ^ tail) * 0xC4CEB9FE1A85EC53ULL;
  return r ^ (r >> 29);
}

uint64_t Checksum(uint32_t version, std::string_view data) {
  return ChecksumFinish(ChecksumStart(version, data.size()), data);
}

std::string KeyOf(const std::string& device, const std::string& module) {
  return device + '\0' + module;
}

std::string Who(const std::string& device, const std::string& module) {
  return module.empty() ? fmt::format("'{}'", device) : fmt::format("'{}/{}'", device, module);
}

// properties.desired as the fast path reads it member by member. Only when it holds "$version"
// and "$metadata", an object whose first members are "$lastUpdated" and "$lastUpdatedVersion"
// (as the service writes it): a patch then changes only the members it names, those members'
// metadata entries, the two root stamps (in place) and "$version" (twin_patch.h), so the partial
// twin holds just these and the rest stays text. Otherwise the whole section is parsed.
struct DesiredMembers {
  std::vector<JsonMember> members;  // of desired
  std::vector<JsonMember> meta;     // of desired.$metadata
  size_t meta_at = 0;               // index of "$metadata" in members
  size_t version_at = 0;            // index of "$version" in members
};

std::optional<DesiredMembers> ScanDesired(std::string_view json,
                                          std::optional<std::vector<JsonMember>> members) {
  if (!members) return std::nullopt;
  DesiredMembers d;
  d.members = std::move(*members);
  bool meta = false, version = false;
  for (size_t i = 0; i < d.members.size(); ++i) {
    if (d.members[i].key == "$metadata") {
      d.meta_at = i;
      meta = true;
    } else if (d.members[i].key == "$version") {
      d.version_at = i;
      version = true;
    }
  }
  if (!meta || !version || json[d.members[d.meta_at].value.begin] != '{') return std::nullopt;
  std::optional<std::vector<JsonMember>> entries =
      ScanObjectMembers(json, d.members[d.meta_at].value);
  if (!entries || entries->size() < 2 || (*entries)[0].key != "$lastUpdated" ||
      (*entries)[1].key != "$lastUpdatedVersion") {
    return std::nullopt;
  }
  d.meta = std::move(*entries);
  return d;
}

bool Named(const Value* patch_section, std::string_view key) {
  return patch_section != nullptr && patch_section->Find(key) != nullptr;
}

bool IsStampKey(std::string_view key) {
  return key == "$lastUpdated" || key == "$lastUpdatedVersion";
}

// Prints, into `out` (after its opening '{'), the members of an object merged from the one whose
// members are `old` (spans of `json`): a member that `touched` (given its index in `old` and its
// key) does not name is copied as text; a touched one is printed from `merged` (through
// `print`), or dropped when `merged` lacks it; the members of `merged` that were not in `old`
// come, in its order, before old member `new_at` (old.size(): at the end). This is the order
// twin_patch.h's merge leaves (existing keys in place, new ones appended; in desired, before its
// trailing "$metadata"/"$version").
template <class Touched, class Print>
void AppendMergedMembers(std::string_view json, const std::vector<JsonMember>& old,
                         const Touched& touched, const Value& merged, size_t new_at,
                         const Print& print, std::string* out) {
  auto comma = [&] {
    if (out->back() != '{') out->push_back(',');
  };
  auto append_new = [&] {
    for (const auto& [key, value] : merged.as_object()) {
      bool was_there = false;
      for (const JsonMember& m : old) was_there = was_there || m.key == key;
      if (was_there) continue;
      comma();
      AppendJsonString(key, out);
      out->push_back(':');
      print(key, value, out);
    }
  };
  for (size_t i = 0; i < old.size(); ++i) {
    if (i == new_at) append_new();
    const JsonMember& m = old[i];
    if (!touched(i, m.key)) {
      comma();
      out->append(m.member.in(json));
    } else if (const Value* now = merged.Find(m.key)) {
      comma();
      out->append(json.substr(m.member.begin, m.value.begin - m.member.begin));  // `"key":`
      print(m.key, *now, out);
    }
  }
  if (new_at >= old.size()) append_new();
}

void PrintValue(std::string_view, const Value& v, std::string* out) { AppendJson(v, out); }

// The A.9 size rule on a whole new section (ApplyTwinPatch saw only the members a patch names).
// A section of n bytes of JSON counts at most 8n by TwinSectionSize (a number counts 8 and takes
// at least a byte; nothing else counts more than its bytes; desired's root "$metadata" and
// "$version" do not count at all), so only a large section needs the exact count.
bool WithinSizeLimit(const std::string& section, size_t limit) {
  if (section.size() * 8 <= limit) return true;
  Expected<Value> whole = ParseJson(section, "patched section");
  return whole.ok() && TwinSectionSize(whole.value()) <= limit;
}

// The whole new desired text from the old one (`d`) and the patched partial section `result`:
// what the whole-document path prints. nullopt if `result` lacks what a patch always leaves.
std::optional<std::string> RebuildDesired(std::string_view json, const DesiredMembers& d,
                                          const Value* patch_desired, const Value& result) {
  const Value* meta = result.Find("$metadata");
  if (!result.is_object() || meta == nullptr || !meta->is_object() ||
      result.Find("$version") == nullptr) {
    return std::nullopt;
  }
  std::string meta_text = "{";
  AppendMergedMembers(
      json, d.meta,
      [&](size_t, std::string_view k) { return IsStampKey(k) || Named(patch_desired, k); }, *meta,
      d.meta.size(), PrintValue, &meta_text);
  meta_text.push_back('}');
  size_t new_at = d.members.size();  // before the trailing run of "$metadata" and "$version"
  while (new_at > 0 &&
         (d.members[new_at - 1].key == "$metadata" || d.members[new_at - 1].key == "$version")) {
    --new_at;
  }
  std::string out;
  out.reserve(d.members.back().member.end - d.members.front().member.begin + 128);
  out.push_back('{');
  AppendMergedMembers(
      json, d.members,
      [&](size_t, std::string_view k) {
        return k == "$metadata" || k == "$version" || Named(patch_desired, k);
      },
      result, new_at,
      [&](std::string_view key, const Value& v, std::string* o) {
        if (key == "$metadata") {
          o->append(meta_text);
        } else {
          AppendJson(v, o);
        }
      },
      &out);
  out.push_back('}');
  return out;
}

// The patch fast path (twin_splice.h): `m` (a kPatch) applied to the stored document `json`
// through a partial twin of only the sections the patch can change. nullopt: the fast path
// declines (a section it needs is missing or not an object, the document does not scan, or the
// patch fails: the whole-document path then reports the error in its own words). A Change with
// no `json`: the patch changes nothing. The new document is written into `*storage` (when not
// null) if it is large enough (SpliceJson).
std::optional<Change> SplicedPatch(std::string_view json, const Mutation& m,
                                   const PatchOptions& options, std::string* storage = nullptr) {
  if (!m.patch.is_object()) return std::nullopt;
  bool wants_tags = m.patch.Find("tags") != nullptr;
  bool wants_desired = m.patch.Find("properties") != nullptr;
  std::optional<TwinSections> sec = ScanTwinSections(json, wants_tags, wants_desired);
  if (!sec || !sec->etag.found() || !sec->version.found()) return std::nullopt;
  auto is_object = [&](const JsonSpan& span) { return span.found() && json[span.begin] == '{'; };
  if (wants_tags && !is_object(sec->tags)) return std::nullopt;
  if (wants_desired && !is_object(sec->desired)) return std::nullopt;
  auto parse = [&](const JsonSpan& span) -> Expected<Value> {
    std::string_view text = span.in(json);
    // The usual etag and version, without the JSON parser: a string without escapes, digits.
    if (text.size() >= 2 && text.front() == '"' && text.back() == '"' &&
        text.find_first_of("\\\"", 1) == text.size() - 1) {
      bool plain = true;
      for (char ch : text) plain = plain && static_cast<unsigned char>(ch) >= 0x20;
      if (plain) return Value::String(std::string(text.substr(1, text.size() - 2)));
    }
    if (!text.empty() && text.size() <= 15 &&
        text.find_first_not_of("0123456789") == std::string_view::npos &&
        (text[0] != '0' || text.size() == 1)) {
      int64_t n = 0;
      for (char ch : text) n = n * 10 + (ch - '0');
      return Value::Number(static_cast<double>(n));
    }
    return ParseJson(text, "stored twin");
  };
  Object members;
  members.reserve(6);
  members.emplace_back("deviceId", Value::String(m.device_id));
  if (!m.module_id.empty()) members.emplace_back("moduleId", Value::String(m.module_id));
  for (auto [name, span] :
       {std::pair<const char*, JsonSpan>{"etag", sec->etag}, {"version", sec->version}}) {
    if (!span.found()) continue;
    Expected<Value> v = parse(span);
    if (!v.ok()) return std::nullopt;
    members.emplace_back(name, std::move(v.value()));
  }
  // Of the tags, only the members the patch names are parsed: a merge patch changes no other
  // member (twin_patch.h), so the partial twin holds just those, and the rest of the tags stays
  // text. The patch's tags must be an object (else the whole-document path reports the error).
  const Value* patch_tags = wants_tags ? m.patch.Find("tags") : nullptr;
  std::optional<std::vector<JsonMember>> tag_members;
  std::vector<char> tag_named;  // per member of tag_members: the patch names it
  if (wants_tags) {
    if (!patch_tags->is_object()) return std::nullopt;
    tag_members = std::move(sec->tag_members);
    if (!tag_members) return std::nullopt;
    Object named;
    tag_named.resize(tag_members->size());
    for (size_t i = 0; i < tag_members->size(); ++i) {
      const JsonMember& member = (*tag_members)[i];
      tag_named[i] = patch_tags->Find(member.key) != nullptr;
      if (!tag_named[i]) continue;
      Expected<Value> v = parse(member.value);
      if (!v.ok()) return std::nullopt;
      named.emplace_back(std::string(member.key), std::move(v.value()));
    }
    members.emplace_back("tags", Value::MakeObject(std::move(named)));
  }
  // Of properties.desired, the same (see DesiredMembers), or the whole section.
  const Value* patch_desired = nullptr;
  std::optional<DesiredMembers> desired_members;
  if (wants_desired) {
    const Value* patch_props = m.patch.Find("properties");
    patch_desired = patch_props->is_object() ? patch_props->Find("desired") : nullptr;
    if (patch_desired == nullptr || patch_desired->is_object()) {
      desired_members = ScanDesired(json, std::move(sec->desired_members));
    }
    Value section;
    if (desired_members) {
      const DesiredMembers& d = *desired_members;
      Object named;
      for (size_t i = 0; i < d.members.size(); ++i) {
        const JsonMember& member = d.members[i];
        if (i == d.meta_at) {
          Object entries;
          for (size_t j = 0; j < d.meta.size(); ++j) {
            if (!IsStampKey(d.meta[j].key) && !Named(patch_desired, d.meta[j].key)) continue;
            Expected<Value> v = parse(d.meta[j].value);
            if (!v.ok()) return std::nullopt;
            entries.emplace_back(std::string(d.meta[j].key), std::move(v.value()));
          }
          named.emplace_back(std::string(member.key), Value::MakeObject(std::move(entries)));
          continue;
        }
        if (i != d.version_at && !Named(patch_desired, member.key)) continue;
        Expected<Value> v = parse(member.value);
        if (!v.ok()) return std::nullopt;
        named.emplace_back(std::string(member.key), std::move(v.value()));
      }
      section = Value::MakeObject(std::move(named));
    } else {
      Expected<Value> whole = parse(sec->desired);
      if (!whole.ok()) return std::nullopt;
      section = std::move(whole.value());
    }
    Object props;
    props.emplace_back("desired", std::move(section));
    members.emplace_back("properties", Value::MakeObject(std::move(props)));
  }
  Value before = Value::MakeObject(std::move(members));
  Expected<PatchResult> r = ApplyTwinPatch(before, m.patch, m.if_match, options);
  if (!r.ok()) return std::nullopt;
  Change c;
  if (!r->changed) return c;
  const Value& after = r->twin;
  const Value* etag = after.Find("etag");
  const Value* version = after.Find("version");
  const Value* tags = after.Find("tags");
  const Value* props = after.Find("properties");
  const Value* desired = props != nullptr ? props->Find("desired") : nullptr;
  if (etag == nullptr || version == nullptr || (r->tags_changed && tags == nullptr) ||
      (r->desired_changed && desired == nullptr)) {
    return std::nullopt;  // cannot happen: a patch keeps these members
  }
  std::string new_etag = ToJson(*etag), new_version = ToJson(*version), new_tags, new_desired;
  std::vector<std::pair<JsonSpan, std::string_view>> splices = {{sec->etag, new_etag},
                                                                {sec->version, new_version}};
  if (r->tags_changed) {
    // The whole new tags: the members the patch does not name as they were, the named ones as
    // the merge left them (see AppendMergedMembers).
    new_tags.reserve(sec->tags.end - sec->tags.begin + 64);
    new_tags.push_back('{');
    AppendMergedMembers(
        json, *tag_members, [&](size_t i, std::string_view) { return tag_named[i] != 0; }, *tags,
        tag_members->size(), PrintValue, &new_tags);
    new_tags.push_back('}');
    if (!WithinSizeLimit(new_tags, kMaxTagsBytes)) return std::nullopt;
    splices.emplace_back(sec->tags, new_tags);
  }
  if (r->desired_changed) {
    if (desired_members) {
      std::optional<std::string> rebuilt =
          RebuildDesired(json, *desired_members, patch_desired, *desired);
      if (!rebuilt) return std::nullopt;
      new_desired = std::move(*rebuilt);
      if (!WithinSizeLimit(new_desired, kMaxDesiredBytes)) return std::nullopt;
    } else {
      new_desired = ToJson(*desired);
    }
    splices.emplace_back(sec->desired, new_desired);
  }
  c.kind = Change::Kind::kUpsert;
  c.device_id = m.device_id;
  c.module_id = m.module_id;
  c.json = DocText::Adopt(SpliceJson(json, std::move(splices), storage));
  c.doc = after;
  c.partial = true;
  c.partial_before = std::move(before);
  return c;
}

// What a bulk batch's lookahead (Fleet::Apply) found for a patch before its turn: FindRow's
// answer in the batch's table. A row it found has had its document's lines asked for too (the
// lookahead does that a few mutations later, still before the patch's turn).
struct LookedUp {
  bool found = false;  // `row` is FindRow's answer
  std::optional<uint32_t> row;
};

// Asks the caches for every line of `doc`.
void PrefetchText(std::string_view doc) {
  for (size_t off = 0; off < doc.size(); off += 64) Prefetch(doc.data() + off);
}

// Patch `m` spliced against the twin as table `t` holds it: its row (nullopt: no such twin) and
// the spliced change (nullopt: the fast path declines). `looked` (optional) is what a lookahead
// found for `m` in `t`. Returns the stored document it read.
std::string_view SpliceInTable(const Table& t, const Mutation& m, const PatchOptions& options,
                               std::optional<uint32_t>* row, std::optional<Change>* change,
                               const LookedUp* looked = nullptr) {
  uint32_t hint = m.row_hint;
  const bool hinted = hint < t.row_count() && t.device_id(hint) == m.device_id &&
                      t.module_id(hint) == m.module_id && t.live().Contains(hint);
  if (hinted) {
    *row = hint;
  } else if (looked != nullptr && looked->found) {
    *row = looked->row;
  } else {
    *row = t.FindRow(m.device_id, m.module_id);
  }
  if (!*row) return {};
  std::string_view doc = t.doc_json(**row);
  // A twin looked up by id is rarely in the caches (a single patch, a bulk batch): ask for all
  // of its lines at once, instead of one miss after another as the scan reaches them (the
  // hardware prefetcher stops at each 4 KiB page). Likewise the new document's storage: in a
  // large fleet it is memory no cache holds, and the copy into it (right after the patch) would
  // stall on each line in turn. Taken now and asked for writing, its lines arrive while the scan
  // and the patch run. It is the old document's size with some room (DocText::kKeptSlack): a
  // patch rarely changes a document by more, and a larger one is allocated again.
  //
  // A row hint comes from a twin job, which skips both: it walks its targets in row order (their
  // documents lie one after another, and the hardware prefetcher streams them), and it splices
  // ahead on a helper thread, where a patch's latency is hidden and only its instructions count.
  std::string storage;
  if (!hinted) {
    if (looked == nullptr || !looked->found) PrefetchText(doc);  // (else the lookahead did)
    storage.reserve(doc.size() + DocText::kKeptSlack);
    for (size_t off = 0; off < storage.capacity(); off += 64) {
      __builtin_prefetch(storage.data() + off, /*rw=*/1);
    }
  }
  *change = SplicedPatch(doc, m, options, hinted ? nullptr : &storage);
  if (*change) (*change)->row = **row;
  return doc;
}

}  // namespace

std::string NowTimestamp() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  int64_t ticks = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count() / 100;
  return FormatTimestamp(ticks);
}

Fleet::Fleet() : Fleet(TwinSet()) {}

Fleet::Fleet(const TwinSet& twins) { Reset(twins); }

void Fleet::Reset(const TwinSet& twins) {
  std::lock_guard<std::mutex> lock(writer_);
  auto s = std::make_shared<FleetState>();
  s->devices = Table::Build(twins.devices, false);
  s->modules = Table::Build(twins.modules, true);
  auto cur = state_.load();
  s->version = cur ? cur->version + 1 : 1;
  state_.store(std::move(s));
}

template <class Visit>
Expected<size_t> Fleet::LoadStreamed(Visit&& visit) {
  // Streamed: each twin goes into its table as it is parsed, and is then dropped.
  TableStream devices(false), modules(true);
  Expected<size_t> n = visit(devices, modules);
  if (!n.ok()) return n.error();
  std::lock_guard<std::mutex> lock(writer_);
  auto s = std::make_shared<FleetState>();
  s->devices = devices.Finish();
  s->modules = modules.Finish();
  auto cur = state_.load();
  s->version = cur ? cur->version + 1 : 1;
  state_.store(std::move(s));
  return *n;
}

Expected<size_t> Fleet::LoadTwinsFile(const std::string& path, InputDocs docs) {
  // The twins come as tokens: no Value is built for them (json_reader.h, TwinTokenSink).
  return LoadStreamed([&](TableStream& devices, TableStream& modules) {
    std::shared_ptr<const void> input;  // set before the first twin
    return VisitTwinsFile(
        path,
        [&](const JsonToken* twin, bool module, std::string_view spelled, bool printed) {
          TableStream& stream = module ? modules : devices;
          if (docs == InputDocs::kCopy) {
            stream.Add(twin);
          } else {
            stream.Add(twin, spelled, input, printed);
          }
        },
        &input);
  });
}

Expected<size_t> Fleet::LoadTwinsText(std::string_view text, std::string_view name) {
  return LoadStreamed([&](TableStream& devices, TableStream& modules) {
    return VisitTwins(text, name, [&](const JsonToken* twin, bool module, std::string_view, bool) {
      (module ? modules : devices).Add(twin);
    });
  });
}

PreparedBatch Fleet::StartPrepare(size_t batch_size, const std::string& now) const {
  PreparedBatch p;
  p.base_ = state_.load();
  p.now_ = now;
  p.entries_.resize(batch_size);
  return p;
}

void Fleet::PrepareRange(const std::vector<Mutation>& batch, size_t begin, size_t end,
                         PreparedBatch* prepared) const {
  if (!splice_patches_.load(std::memory_order_relaxed)) return;
  end = std::min({end, batch.size(), prepared->entries_.size()});
  if (begin >= end) return;
  const FleetState& base = *prepared->base_;
  PatchOptions options;
  options.now = prepared->now_;
  for (size_t i = begin; i < end; ++i) {
    const Mutation& m = batch[i];
    if (m.kind != Mutation::Kind::kPatch) continue;
    const Table& t = m.module_id.empty() ? *base.devices : *base.modules;
    PreparedBatch::Entry& a = prepared->entries_[i];
    a.done = true;
    std::string_view doc = SpliceInTable(t, m, options, &a.row, &a.change);
    a.doc = doc.data();
    a.doc_size = doc.size();
  }
}

Expected<uint64_t> Fleet::Apply(const std::vector<Mutation>& batch, const std::string& now,
                                const ApplyOptions& apply, PreparedBatch* prepared) {
  std::lock_guard<std::mutex> lock(writer_);
  std::shared_ptr<const FleetState> cur = state_.load();
  PatchOptions options;
  options.now = now;
  const bool splice = splice_patches_.load(std::memory_order_relaxed);
  // The splices of the batch's patches computed ahead (PreparedBatch): the caller's, or computed
  // here on apply.threads threads. The loop below uses one exactly where it would call
  // SplicedPatch itself (for a twin the batch has not touched before), if it is still valid.
  PreparedBatch* ahead = nullptr;
  if (prepared != nullptr && splice && prepared->base_ != nullptr &&
      prepared->entries_.size() == batch.size() && prepared->now_ == now) {
    ahead = prepared;
  }
  PreparedBatch local;
  if (ahead == nullptr && splice && apply.threads > 1 &&
      batch.size() >= std::max<size_t>(1, apply.parallel_min_batch)) {
    local.base_ = cur;
    local.now_ = now;
    local.entries_.resize(batch.size());
    size_t parts = std::min<size_t>(apply.threads, batch.size());
    RunInParts(parts, [&](size_t p) {
      PrepareRange(batch, batch.size() * p / parts, batch.size() * (p + 1) / parts, &local);
    });
    ahead = &local;
  }
  // The twins of the batch's spliced changes, by table and row (the index of the change): no id
  // strings to build and hash on a twin job's path. `current` moves one into `touched` (below)
  // when a later mutation needs it.
  std::unordered_map<uint64_t, size_t> spliced;
  auto row_key = [](bool module, uint32_t row) { return uint64_t{module} << 32 | row; };
  // A prepared splice of mutation i, if it still applies to `cur`: computed against `cur` itself,
  // or the twin's row holds the very document it was computed from. Returns false when the
  // splice must be computed again (it then says nothing about the twin, not even that it is
  // missing).
  auto take_ahead = [&](size_t i, const Table& t, std::optional<uint32_t>* row,
                        std::optional<Change>* change) {
    if (ahead == nullptr || !ahead->entries_[i].done) return false;
    PreparedBatch::Entry& a = ahead->entries_[i];
    if (ahead->base_ != cur) {
      if (!a.row || *a.row >= t.row_count() || !t.live().Contains(*a.row)) return false;
      std::string_view doc = t.doc_json(*a.row);
      if (doc.data() != a.doc || doc.size() != a.doc_size) return false;
    }
    // Computed against the stored document, which a splice earlier in the batch changed.
    if (a.row && spliced.count(row_key(&t == cur->modules.get(), *a.row)) != 0) return false;
    *row = a.row;
    *change = std::move(a.change);
    if (ahead == prepared) prepared_taken_.fetch_add(1, std::memory_order_relaxed);
    return true;
  };
  // The twins this batch has touched so far (the index of their latest change), so that later
  // mutations see earlier ones; and the stored documents it has parsed (WithChanges reuses them
  // as the rows' old documents instead of parsing them again).
  std::unordered_map<std::string, std::pair<bool, size_t>> touched;  // key -> (module, change)
  std::unordered_map<std::string, Value> originals;
  std::vector<Change> device_changes, module_changes;
  auto changes_of = [&](bool module) -> std::vector<Change>& {
    return module ? module_changes : device_changes;
  };
  // The current document of a twin (valid until the next change is recorded), or nullptr.
  auto current = [&](const std::string& device, const std::string& module) -> const Value* {
    std::string key = KeyOf(device, module);
    auto it = touched.find(key);
    if (it == touched.end() && !spliced.empty()) {
      const Table& t = module.empty() ? *cur->devices : *cur->modules;
      if (std::optional<uint32_t> row = t.FindRow(device, module)) {
        if (auto s = spliced.find(row_key(!module.empty(), *row)); s != spliced.end()) {
          it = touched.emplace(key, std::make_pair(!module.empty(), s->second)).first;
        }
      }
    }
    if (it != touched.end()) {
      Change& c = changes_of(it->second.first)[it->second.second];
      if (c.kind == Change::Kind::kDelete) return nullptr;
      if (c.partial) {
        // A spliced patch touched this twin earlier in the batch: from here on the twin goes the
        // whole-document way (its stored document becomes the row's old document).
        // (A splice always knows its row.)
        const Table& t = module.empty() ? *cur->devices : *cur->modules;
        Expected<Value> doc = ParseJson(c.json.view(), "patched twin");
        if (c.row >= t.row_count() || !doc.ok()) return nullptr;  // cannot happen
        c.before = &originals.emplace(key, t.Document(c.row)).first->second;
        c.doc = std::move(doc.value());
        c.partial = false;
        c.partial_before = Value();
      }
      return &c.doc;
    }
    if (auto it = originals.find(key); it != originals.end()) return &it->second;
    const Table& t = module.empty() ? *cur->devices : *cur->modules;
    std::optional<uint32_t> row = t.FindRow(device, module);
    if (!row) return nullptr;
    return &originals.emplace(std::move(key), t.Document(*row)).first->second;
  };
  // Appends a change to its table's list and returns its index. The list is reserved for the
  // whole batch: a Change is large, and growing the list would move every change again.
  auto push_change = [&](bool module, Change c) {
    std::vector<Change>& v = changes_of(module);
    if (v.capacity() == 0) v.reserve(batch.size());
    v.push_back(std::move(c));
    return v.size() - 1;
  };
  auto record = [&](Change c, std::string key = {}) {
    if (key.empty()) key = KeyOf(c.device_id, c.module_id);
    if (!originals.empty()) {  // (a batch of spliced patches parses no document)
      if (auto it = originals.find(key); it != originals.end()) c.before = &it->second;
    }
    bool module = !c.module_id.empty();
    if (touched.empty()) touched.reserve(batch.size());
    touched[std::move(key)] = {module, push_change(module, std::move(c))};
  };
  auto upsert = [&](const std::string& device, const std::string& module, Value doc) {
    Change c;
    c.kind = Change::Kind::kUpsert;
    c.device_id = device;
    c.module_id = module;
    c.doc = std::move(doc);
    record(std::move(c));
  };
  auto remove = [&](const std::string& device, const std::string& module) {
    Change c;
    c.kind = Change::Kind::kDelete;
    c.device_id = device;
    c.module_id = module;
    record(std::move(c));
  };
  // A batch of patches by id (a bulk batch: a twin job brings row hints and splices ahead) looks
  // its twins up ahead of their turn, in three steps a few mutations apart: the id hash's slot,
  // then the row (FindRow, which asks for the row's ids and document handle), then the
  // document's lines. Each patch would otherwise wait for these misses one after another; this
  // way they overlap with the work on the patches before it. The lookups are against `cur`,
  // which the loop does not change, so each is the answer the patch's own lookup would get.
  constexpr size_t kAskSlot = 12, kAskRow = 6, kAskDoc = 3;
  std::vector<LookedUp> looked;
  if (splice && ahead == nullptr && batch.size() > 1) looked.resize(batch.size());
  auto table_of = [&](const Mutation& m) -> const Table& {
    return m.module_id.empty() ? *cur->devices : *cur->modules;
  };
  auto by_id = [&](size_t j) {
    const Mutation& m = batch[j];
    return m.kind == Mutation::Kind::kPatch && m.row_hint == Mutation::kNoRowHint;
  };
  auto look_ahead = [&](size_t i) {
    const size_t n = batch.size();
    if (i + kAskSlot < n && by_id(i + kAskSlot)) {
      table_of(batch[i + kAskSlot]).PrefetchIdSlot(batch[i + kAskSlot].device_id);
    }
    if (i + kAskRow < n && by_id(i + kAskRow)) {
      const Mutation& m = batch[i + kAskRow];
      LookedUp& l = looked[i + kAskRow];
      l.row = table_of(m).FindRow(m.device_id, m.module_id);
      l.found = true;
    }
    if (i + kAskDoc < n && looked[i + kAskDoc].row) {
      PrefetchText(table_of(batch[i + kAskDoc]).doc_json(*looked[i + kAskDoc].row));
    }
  };
  if (!looked.empty()) {
    for (size_t j = 0; j < std::min(kAskSlot, batch.size()); ++j) {
      if (by_id(j)) table_of(batch[j]).PrefetchIdSlot(batch[j].device_id);
    }
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    const Mutation& m = batch[i];
    if (!looked.empty()) look_ahead(i);
    auto fail = [&](const std::string& what) {
      return Error{batch.size() == 1 ? what : fmt::format("mutation {}: {}", i + 1, what)};
    };
    switch (m.kind) {
      case Mutation::Kind::kUpsert: {
        if (!m.doc.is_object()) return fail("a twin must be a JSON object");
        const Value* device = m.doc.Find("deviceId");
        const Value* module = m.doc.Find("moduleId");
        if (device == nullptr || !device->is_string() || device->as_string().empty()) {
          return fail("twin has no \"deviceId\" string");
        }
        if (module != nullptr && (!module->is_string() || module->as_string().empty())) {
          return fail("\"moduleId\" must be a non-empty string");
        }
        upsert(device->as_string(), module ? module->as_string() : "", m.doc);
        break;
      }
      case Mutation::Kind::kDelete: {
        if (current(m.device_id, m.module_id) == nullptr) {
          return fail(fmt::format("no twin {}", Who(m.device_id, m.module_id)));
        }
        remove(m.device_id, m.module_id);
        if (m.module_id.empty()) {  // deleting a device deletes its modules
          const Table& mt = *cur->modules;
          const std::vector<uint32_t>& order = mt.order();
          auto it = std::lower_bound(order.begin(), order.end(), m.device_id,
                                     [&](uint32_t row, const std::string& d) {
                                       return mt.device_id(row) < std::string_view(d);
                                     });
          std::vector<std::string> modules;
          for (; it != order.end() && mt.device_id(*it) == m.device_id; ++it) {
            modules.emplace_back(mt.module_id(*it));
          }
          std::string prefix = m.device_id + '\0';
          for (const auto& [key, where] : touched) {  // modules added by this batch
            if (where.first && key.size() > prefix.size() && key.rfind(prefix, 0) == 0) {
              modules.push_back(key.substr(prefix.size()));
            }
          }
          std::sort(modules.begin(), modules.end());
          modules.erase(std::unique(modules.begin(), modules.end()), modules.end());
          for (const std::string& mid : modules) {
            if (current(m.device_id, mid) != nullptr) remove(m.device_id, mid);
          }
        }
        break;
      }
      case Mutation::Kind::kPatch:
      case Mutation::Kind::kReplace: {
        if (m.kind == Mutation::Kind::kPatch && splice) {
          bool seen = false;  // a change of this twin before, other than a splice
          if (!touched.empty() || !originals.empty()) {
            std::string key = KeyOf(m.device_id, m.module_id);
            seen = touched.count(key) != 0 || originals.count(key) != 0;
          }
          if (!seen) {
            const bool module = !m.module_id.empty();
            const Table& t = module ? *cur->modules : *cur->devices;
            std::optional<uint32_t> row;
            std::optional<Change> c;
            if (!take_ahead(i, t, &row, &c)) {
              SpliceInTable(t, m, options, &row, &c, looked.empty() ? nullptr : &looked[i]);
            }
            if (!row) return fail(fmt::format("no twin {}", Who(m.device_id, m.module_id)));
            // A twin spliced before in this batch goes the whole-document way (`current`).
            if (c && spliced.count(row_key(module, *row)) == 0) {
              spliced_patches_.fetch_add(1, std::memory_order_relaxed);
              if (c->json) {  // no text: nothing changed
                if (spliced.empty()) spliced.reserve(batch.size());
                spliced[row_key(module, *row)] = push_change(module, std::move(*c));
              }
              break;
            }
          }
        }
        const Value* doc = current(m.device_id, m.module_id);
        if (doc == nullptr) {
          return fail(fmt::format("no twin {}", Who(m.device_id, m.module_id)));
        }
        Expected<PatchResult> r = m.kind == Mutation::Kind::kPatch
                                      ? ApplyTwinPatch(*doc, m.patch, m.if_match, options)
                                      : ReplaceTwin(*doc, m.patch, m.if_match, options);
        if (!r.ok())
          return fail(fmt::format("twin {}: {}", Who(m.device_id, m.module_id), r.error().message));
        if (r->changed) upsert(m.device_id, m.module_id, std::move(r->twin));
        break;
      }
    }
  }
  auto next = std::make_shared<FleetState>(*cur);
  if (!device_changes.empty()) {
    auto t = cur->devices->WithChanges(device_changes, apply.threads, apply.parallel_min_batch);
    if (!t.ok()) return t.error();
    next->devices = std::move(t.value());
  }
  if (!module_changes.empty()) {
    auto t = cur->modules->WithChanges(module_changes, apply.threads, apply.parallel_min_batch);
    if (!t.ok()) return t.error();
    next->modules = std::move(t.value());
  }
  next->version = cur->version + 1;
  uint64_t v = next->version;
  state_.store(std::move(next));
  return v;
}

Expected<uint64_t> Fleet::Upsert(Value doc) {
  Mutation m;
  m.kind = Mutation::Kind::kUpsert;
  m.doc = std::move(doc);
  return Apply({m}, NowTimestamp());
}

Expected<uint64_t> Fleet::Delete(const std::string& device_id, const std::string& module_id) {
  Mutation m;
  m.kind = Mutation::Kind::kDelete;
  m.device_id = device_id;
  m.module_id = module_id;
  return Apply({m}, NowTimestamp());
}

Expected<uint64_t> Fleet::Patch(const std::string& device_id, const std::string& module_id,
                                const Value& patch, const std::string& if_match,
                                const std::string& now) {
  std::vector<Mutation> batch(1);  // built in place: `{m}` would copy the patch once more
  Mutation& m = batch[0];
  m.kind = Mutation::Kind::kPatch;
  m.device_id = device_id;
  m.module_id = module_id;
  m.patch = patch;
  m.if_match = if_match;
  return Apply(batch, now);
}

namespace {

// Drops the whole pages of [begin, end) from a private read-only file mapping.
void ReleasePages(const char* begin, const char* end) {
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  uintptr_t b = (reinterpret_cast<uintptr_t>(begin) + page - 1) & ~(page - 1);
  uintptr_t e = reinterpret_cast<uintptr_t>(end) & ~(page - 1);
  if (begin != nullptr && e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

// Maps the pages of [begin, end) of a file mapping now (MADV_POPULATE_READ), when they fit in
// half of the memory: a page in the page cache is then read without a page fault. An optimisation
// only: an older kernel refuses it (EINVAL) and the pages are faulted in as they are read.
void PopulatePages(const char* begin, const char* end) {
  if (begin == nullptr || end <= begin) return;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t memory = static_cast<uint64_t>(::sysconf(_SC_PHYS_PAGES)) * page;
  uintptr_t b = reinterpret_cast<uintptr_t>(begin) & ~(page - 1);
  uintptr_t e = reinterpret_cast<uintptr_t>(end);
  if (e - b > memory / 2) return;
  ::madvise(reinterpret_cast<void*>(b), e - b, MADV_POPULATE_READ);
}

// The header of an index file: magic, format version, payload length, payload checksum.
std::string IndexHeader(uint32_t version, uint64_t length, uint64_t checksum) {
  std::string out(kMagic, 8);
  PutU32(&out, version);
  PutU64(&out, length);
  PutU64(&out, checksum);
  return out;
}

// The payload of a fleet's file (what follows the header), in pieces, to `emit(string_view)`:
// the fleet version, then each table's head, texts and columns. Serialize and Save both write
// it; the payload's length is known before the first piece (PayloadParts::length).
struct PayloadParts {
  explicit PayloadParts(const FleetState& s)
      : state(s),
        devices(TableCodec::Prepare(*s.devices)),
        modules(TableCodec::Prepare(*s.modules)) {}
  uint64_t length() const { return 8 + devices.size() + modules.size(); }

  template <class F>
  void Emit(F&& emit) const {
    std::string version;
    PutU64(&version, state.version);
    emit(std::string_view(version));
    for (const auto& [table, parts] :
         {std::pair{state.devices.get(), &devices}, {state.modules.get(), &modules}}) {
      emit(std::string_view(parts->head));
      TableCodec::Texts(*table, emit);
      emit(std::string_view(parts->columns));
    }
  }

  const FleetState& state;
  TableCodec::Parts devices;
  TableCodec::Parts modules;
};

}  // namespace

std::string Fleet::Serialize() const {
  std::shared_ptr<const FleetState> s = state_.load();
  PayloadParts payload(*s);
  std::string out = IndexHeader(kFormatVersion, payload.length(), 0);  // checksum below
  out.reserve(kHeaderBytes + payload.length());
  payload.Emit([&](std::string_view piece) { out.append(piece); });
  uint64_t sum = Checksum(kFormatVersion, std::string_view(out).substr(kHeaderBytes));
  std::memcpy(out.data() + 20, &sum, 8);
  return out;
}

Expected<std::unique_ptr<Fleet>> Fleet::Deserialize(std::string_view bytes,
                                                    const std::string& name) {
  return DeserializeOwned(bytes, name, nullptr, nullptr);
}

Expected<std::unique_ptr<Fleet>> Fleet::DeserializeOwned(std::string_view bytes,
                                                         const std::string& name,
                                                         std::shared_ptr<const void> owner,
                                                         const PayloadChecksum& payload_checksum) {
  auto fail = [&](const std::string& what) { return Error{fmt::format("{}: {}", name, what)}; };
  if (bytes.size() < kHeaderBytes || std::memcmp(bytes.data(), kMagic, 8) != 0) {
    return fail("not a twinq index file");
  }
  std::string_view in = bytes.substr(8);
  uint32_t version = 0;
  uint64_t length = 0, checksum = 0;
  GetU32(&in, &version);
  GetU64(&in, &length);
  GetU64(&in, &checksum);
  if (version < 1 || version > kFormatVersion) {
    return fail(
        fmt::format("index format version {} is not supported (this build reads versions 1 to {})",
                    version, kFormatVersion));
  }
  if (in.size() < length) {
    return fail(fmt::format("file is truncated: {} of {} payload bytes", in.size(), length));
  }
  if (in.size() > length) return fail("trailing bytes after the index");
  if (payload_checksum) {
    Expected<uint64_t> sum = payload_checksum(version);
    if (!sum.ok()) return fail(sum.error().message);
    if (*sum != checksum) return fail("checksum mismatch: the file is corrupted");
  } else if (Checksum(version, in) != checksum) {
    return fail("checksum mismatch: the file is corrupted");
  }
  auto s = std::make_shared<FleetState>();
  std::string why;
  if (!GetU64(&in, &s->version)) return fail("truncated header");
  const char* device_columns = nullptr;
  const char* module_columns = nullptr;
  const char* devices_end = nullptr;
  if (!TableCodec::Read(&in, &s->devices, &why, version, owner, &device_columns)) {
    return fail("device table: " + why);
  }
  devices_end = in.data();
  if (!TableCodec::Read(&in, &s->modules, &why, version, owner, &module_columns)) {
    return fail("module table: " + why);
  }
  if (!in.empty()) return fail("unexpected bytes after the tables");
  if (s->devices->modules() || !s->modules->modules()) return fail("tables in the wrong order");
  if (owner) {
    // The documents and the dictionaries are views into `bytes`; the rest of the columns was
    // copied out. The column pages are handed back all the same: a private mapping re-reads a
    // page from the file when it is touched again (a dictionary's, on its first lookup).
    ReleasePages(device_columns, devices_end);
    ReleasePages(module_columns, bytes.data() + bytes.size());
    // The pages of each table's rows (ids and documents, the part before its columns) are
    // mapped now, while the checksum pass has just brought them into the page cache. A read of
    // a document (a patch, a SELECT *) would otherwise fault on its page first, and a fault
    // costs microseconds on the benchmark VM: bench_index's batches of 10,000 random patches
    // ran 21-36 % faster this way. A test program populated the whole 3.06 GB 1M index file in
    // 0.13 s, and Open's time did not change beyond its noise.
    PopulatePages(bytes.data(), device_columns);
    PopulatePages(devices_end, module_columns);
  }
  auto fleet = std::make_unique<Fleet>();
  fleet->state_.store(std::move(s));
  return fleet;
}

namespace {

// Writes a file through a buffer, checksumming what passes (the payload after the header, which
// is written last): what Fleet::Save streams instead of building the file in memory.
class IndexFileWriter {
 public:
  IndexFileWriter(int fd, uint64_t length)
      : fd_(fd),
        length_(length),
        state_(ChecksumStart(kFormatVersion, length)),
        buffer_(kBuffer, '\0') {}

  void Append(std::string_view bytes) {
    while (!bytes.empty() && error_ == 0) {
      size_t n = std::min(bytes.size(), kBuffer - used_);
      std::memcpy(buffer_.data() + used_, bytes.data(), n);
      used_ += n;
      bytes.remove_prefix(n);
      if (used_ == kBuffer) {
        ChecksumBlocks(&state_, std::string_view(buffer_.data(), used_));  // all: 32 | kBuffer
        WriteAll(buffer_.data(), used_, kHeaderBytes + written_);
        written_ += used_;
        used_ = 0;
      }
    }
  }

  // Writes the rest and then the header; the errno of the first failed write (EIO when the
  // payload was not the length given), or 0.
  int Finish() {
    uint64_t sum = ChecksumFinish(state_, std::string_view(buffer_.data(), used_));
    WriteAll(buffer_.data(), used_, kHeaderBytes + written_);
    written_ += used_;
    used_ = 0;
    std::string header = IndexHeader(kFormatVersion, length_, sum);
    WriteAll(header.data(), header.size(), 0);
    if (error_ == 0 && written_ != length_) error_ = EIO;  // cannot happen: Prepare's sizes
    return error_;
  }

 private:
  static constexpr size_t kBuffer = size_t{1} << 20;  // a multiple of 32 (the checksum's blocks)

  void WriteAll(const char* p, size_t n, uint64_t at) {
    while (n > 0 && error_ == 0) {
      ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(at));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        error_ = w < 0 ? errno : EIO;
        return;
      }
      p += w;
      n -= static_cast<size_t>(w);
      at += static_cast<uint64_t>(w);
    }
  }

  int fd_;
  uint64_t length_;
  ChecksumState state_;
  std::string buffer_;
  size_t used_ = 0;
  uint64_t written_ = 0;
  int error_ = 0;
};

}  // namespace

Expected<size_t> Fleet::Save(const std::string& path) const {
  // Streamed into `path`.tmp, which is synced and then renamed over `path`, and the directory
  // synced: a crash leaves either the old file or the new one, never a torn one under `path`.
  // The head and the columns of each table are serialized in memory first (the payload's length
  // seeds the checksum, so it must be known before the first byte); the rows' texts, nearly all
  // of the file, go from the documents to the file through one buffer.
  std::shared_ptr<const FleetState> s = state_.load();
  PayloadParts payload(*s);
  const std::string tmp = SaveTemporaryPath(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Error{fmt::format("{}: cannot write: {}", path, std::strerror(errno))};
  auto fail = [&](const char* what, int e) -> Error {
    ::close(fd);
    ::unlink(tmp.c_str());
    return Error{fmt::format("{}: {}: {}", path, what, std::strerror(e))};
  };
  IndexFileWriter w(fd, payload.length());
  payload.Emit([&](std::string_view piece) { w.Append(piece); });
  if (int e = w.Finish(); e != 0) return fail("write failed", e);
  if (::fsync(fd) != 0) return fail("cannot sync", errno);
  if (::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return Error{fmt::format("{}: write failed: {}", path, std::strerror(e))};
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return Error{fmt::format("{}: cannot replace: {}", path, std::strerror(e))};
  }
  // The rename itself is made durable by syncing the directory (best effort: a directory that
  // cannot be opened for reading still holds the file).
  size_t slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return static_cast<size_t>(kHeaderBytes + payload.length());
}

Expected<std::unique_ptr<Fleet>> Fleet::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{fmt::format("{}: cannot read: {}", path, std::strerror(errno))};
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return Error{fmt::format("{}: cannot read: {}", path, std::strerror(e))};
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error{fmt::format("{}: not an index file: {}", path,
                             S_ISDIR(st.st_mode) ? "it is a directory" : "not a regular file")};
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return Deserialize(std::string_view(), path);
  }
  // Mapped, not read into a fresh buffer: Open reads only the ids and the columns through the
  // mapping. The documents and dictionaries stay in the page cache; the rows' pages are mapped
  // once the file is checked (DeserializeOwned, PopulatePages). On the benchmark VM every page
  // fault and every TLB miss on 4 KiB pages is expensive (bench/BENCHLOG.md, "What fresh memory
  // costs"). The checksum pass reads the file with pread into one small buffer instead: the
  // kernel copies from the page cache at several GB/s, against about 2.6 GB/s for a pass over
  // the mapping.
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    ::close(fd);
    return Error{fmt::format("{}: cannot map: {}", path, std::strerror(e))};
  }
  // The documents stay in the mapping (views, not copies): it is unmapped when the last document
  // that points into it is gone (the fleet's, or any version's or reader's that still holds one).
  struct Mapping {
    Mapping(void* p, size_t size) : p(p), size(size) {}
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    ~Mapping() { ::munmap(p, size); }
    void* p;
    size_t size;
  };
  auto mapping = std::make_shared<const Mapping>(p, size);
  std::string_view bytes(static_cast<const char*>(p), size);
  // The payload's checksum, read from the file (DeserializeOwned has checked that the payload
  // is the rest of the file after the header).
  auto checksum = [&](uint32_t version) -> Expected<uint64_t> {
    const uint64_t length = size - kHeaderBytes;
    ChecksumState state = ChecksumStart(version, length);
    constexpr size_t kPiece = size_t{1} << 20;  // a multiple of 32
    std::string buffer(kPiece, '\0');
    uint64_t at = 0;
    while (true) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(kPiece, length - at));
      size_t got = 0;
      while (got < want) {
        ssize_t n = ::pread(fd, buffer.data() + got, want - got,
                            static_cast<off_t>(kHeaderBytes + at + got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          return Error{n < 0 ? fmt::format("read error: {}", std::strerror(errno))
                             : std::string("the file shrank while it was read")};
        }
        got += static_cast<size_t>(n);
      }
      at += want;
      std::string_view piece(buffer.data(), want);
      if (at == length) return ChecksumFinish(state, piece);
      ChecksumBlocks(&state, piece);
    }
  };
  Expected<std::unique_ptr<Fleet>> fleet =
      DeserializeOwned(bytes, path, std::move(mapping), checksum);
  ::close(fd);
  return fleet;
}

std::string SealIndexPayload(std::string_view payload, uint32_t version) {
  std::string out = IndexHeader(version, payload.size(), Checksum(version, payload));
  out.append(payload);
  return out;
}

TwinSet ToTwinSet(const Snapshot& snapshot) {
  TwinSet out;
  for (uint32_t row : snapshot.devices().order())
    out.devices.push_back(snapshot.devices().Document(row));
  for (uint32_t row : snapshot.modules().order())
    out.modules.push_back(snapshot.modules().Document(row));
  return out;
}

}  // namespace twinq::index
