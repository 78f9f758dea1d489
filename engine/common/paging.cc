#include "engine/common/paging.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstring>

namespace twinq {

namespace {

constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Base64Url(std::string_view in) {
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (unsigned char c : in) {
    buf = (buf << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kBase64Url[(buf >> bits) & 0x3F]);
    }
  }
  if (bits > 0) out.push_back(kBase64Url[(buf << (6 - bits)) & 0x3F]);
  return out;
}

bool UnBase64Url(std::string_view in, std::string* out) {
  uint32_t buf = 0;
  int bits = 0;
  for (char c : in) {
    const char* p = c == '\0' ? nullptr : std::strchr(kBase64Url, c);
    if (p == nullptr) return false;
    buf = (buf << 6) | static_cast<uint32_t>(p - kBase64Url);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((buf >> bits) & 0xFF));
    }
  }
  return true;
}

}  // namespace

uint64_t Fingerprint(std::string_view text) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::string MakeContinuation(uint64_t fingerprint, size_t offset) {
  return Base64Url(fmt::format("tq1:{}:{:016x}", offset, fingerprint));
}

Expected<size_t> ReadContinuation(std::string_view token, uint64_t fingerprint) {
  std::string raw;
  size_t offset = 0;
  unsigned long long fp = 0;
  char tail = 0;
  if (token.size() > 128 || !UnBase64Url(token, &raw) ||
      std::sscanf(raw.c_str(), "tq1:%zu:%16llx%c", &offset, &fp, &tail) != 2) {
    return Error{"invalid continuation token"};
  }
  if (fp != fingerprint) return Error{"continuation token belongs to another query"};
  return offset;
}

Expected<QueryResult> CutPage(std::vector<Value> all, uint64_t fingerprint,
                              const PageRequest& page) {
  size_t offset = 0;
  if (!page.continuation.empty()) {
    Expected<size_t> o = ReadContinuation(page.continuation, fingerprint);
    if (!o.ok()) return o.error();
    offset = *o;
  }
  if (offset > all.size()) return Error{"continuation token is past the end of the result"};
  size_t end = page.page_size == 0 ? all.size() : std::min(all.size(), offset + page.page_size);
  QueryResult result;
  result.rows.assign(std::make_move_iterator(all.begin() + static_cast<ptrdiff_t>(offset)),
                     std::make_move_iterator(all.begin() + static_cast<ptrdiff_t>(end)));
  if (end < all.size()) result.continuation = MakeContinuation(fingerprint, end);
  return result;
}

}  // namespace twinq
