// The AWS SigV4 test suite (aws-c-auth tests/aws-signing-test-suite/v4,
// Apache-2.0, see tests/vectors/sigv4/README.md) and the S3 API reference
// examples, header-signing form, byte for byte.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_split.h"
#include "client/sigv4.h"
#include "crypto/hash.h"

namespace bkv {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The value of "name": "..." or "name": true/false in the flat context.json.
std::string JsonField(const std::string& json, const std::string& name) {
  size_t pos = json.find("\"" + name + "\"");
  if (pos == std::string::npos) return "";
  pos = json.find(':', pos);
  pos = json.find_first_not_of(" \t\n", pos + 1);
  if (json[pos] == '"') {
    return json.substr(pos + 1, json.find('"', pos + 1) - pos - 1);
  }
  return json.substr(pos, json.find_first_of(",}\n", pos) - pos);
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(
          std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

fs::path VectorDir() {
  const char* src = std::getenv("BKV_SOURCE_DIR");
  return fs::path(src ? src : ".") / "tests/vectors/sigv4";
}

struct Case {
  SigV4Request request;
  SigV4Scope scope;
  SigV4Credentials credentials;
};

Case Load(const fs::path& dir) {
  const std::string ctx = Slurp(dir / "context.json");
  const std::string raw = Slurp(dir / "request.txt");
  Case c;
  const size_t blank = raw.find("\n\n");
  const std::string head = raw.substr(0, blank);
  const std::string body =
      blank == std::string::npos ? "" : raw.substr(blank + 2);
  std::vector<std::string> lines = absl::StrSplit(head, '\n');
  // "METHOD target HTTP/1.1"
  const std::string& first = lines[0];
  c.request.method = first.substr(0, first.find(' '));
  std::string target = first.substr(first.find(' ') + 1);
  target = target.substr(0, target.rfind(" HTTP/"));
  const size_t q = target.find('?');
  c.request.path = target.substr(0, q);
  if (q != std::string::npos) {
    for (absl::string_view kv :
         absl::StrSplit(target.substr(q + 1), '&', absl::SkipEmpty())) {
      std::pair<std::string, std::string> p = absl::StrSplit(kv, '=');
      c.request.query.emplace_back(PercentDecode(p.first),
                                   PercentDecode(p.second));
    }
  }
  bool has_date = false;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    if (l.empty()) continue;
    if (l[0] == ' ' || l[0] == '\t') {
      c.request.headers.back().second += " " + l;
      continue;
    }
    const size_t colon = l.find(':');
    std::string name = l.substr(0, colon);
    std::string lower = name;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(ch));
    has_date |= lower == "x-amz-date";
    c.request.headers.emplace_back(name, l.substr(colon + 1));
    if (lower == "x-amz-content-sha256") {
      c.request.payload_hash = l.substr(colon + 1);
    }
  }
  std::string ts = JsonField(ctx, "timestamp");  // 2015-08-30T12:36:00Z
  ts.erase(std::remove(ts.begin(), ts.end(), '-'), ts.end());
  ts.erase(std::remove(ts.begin(), ts.end(), ':'), ts.end());
  c.scope = {ts, JsonField(ctx, "region"), JsonField(ctx, "service")};
  if (!has_date) c.request.headers.emplace_back("X-Amz-Date", ts);
  c.credentials.access_key_id = JsonField(ctx, "access_key_id");
  c.credentials.secret_access_key =
      SecretBytes::Copy(JsonField(ctx, "secret_access_key"));
  const std::string token = JsonField(ctx, "token");
  if (!token.empty() && JsonField(ctx, "omit_session_token") != "true") {
    c.request.headers.emplace_back("X-Amz-Security-Token", token);
  }
  const std::string body_hash = Sha256Hex(AsBytes(body));
  if (c.request.payload_hash.empty()) {
    const std::string signed_value = JsonField(ctx, "signed_body_value");
    c.request.payload_hash = signed_value.empty() ? body_hash : signed_value;
  }
  if (JsonField(ctx, "sign_body") == "true") {
    c.request.headers.emplace_back("X-Amz-Content-Sha256",
                                   c.request.payload_hash);
  }
  c.request.normalize_path = JsonField(ctx, "normalize") == "true";
  return c;
}

std::vector<fs::path> Cases() {
  std::vector<fs::path> out;
  for (const char* group : {"v4", "s3-docs-examples", "v4-removed-upstream"}) {
    for (const auto& e : fs::directory_iterator(VectorDir() / group)) {
      if (fs::exists(e.path() / "header-signature.txt")) {
        out.push_back(e.path());
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(SigV4VectorsTest, AllHeaderCasesMatchByteForByte) {
  auto cases = Cases();
  ASSERT_GE(cases.size(), 40u) << "vectors missing under " << VectorDir();
  for (const fs::path& dir : cases) {
    SCOPED_TRACE(dir.string());
    Case c = Load(dir);
    EXPECT_EQ(SigV4CanonicalRequest(c.request),
              Slurp(dir / "header-canonical-request.txt"));
    EXPECT_EQ(SigV4StringToSign(c.request, c.scope),
              Slurp(dir / "header-string-to-sign.txt"));
    EXPECT_EQ(SigV4Signature(c.request, c.scope, c.credentials),
              Slurp(dir / "header-signature.txt"));
  }
}

TEST(SigV4VectorsTest, AuthorizationHeaderOfGetVanilla) {
  Case c = Load(VectorDir() / "v4/get-vanilla");
  EXPECT_EQ(SigV4Authorization(c.request, c.scope, c.credentials),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
            "service/aws4_request, SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1"
            "d763fbf31");
}

TEST(SigV4Test, UriEncoding) {
  EXPECT_EQ(SigV4UriEncode("a b/c~d$", false), "a%20b/c~d%24");
  EXPECT_EQ(SigV4UriEncode("a/b", true), "a%2Fb");
}

}  // namespace
}  // namespace bkv
