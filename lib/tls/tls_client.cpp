#include "tls_client.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <vector>

namespace portico::detail {

namespace {

std::string mbedtls_message(int rc) {
  char text[160];
  mbedtls_strerror(rc, text, sizeof text);
  return fmt::format("{} (-0x{:04x})", text, static_cast<unsigned>(-rc));
}

// mbedTLS lists the verification failures one per line, each with a
// prefix; a message wants them on one line.
std::string verify_reasons(std::uint32_t flags) {
  char text[512];
  const int n = mbedtls_x509_crt_verify_info(text, sizeof text, "", flags);
  std::string out;
  std::string_view rest(text, n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!rest.empty()) {
    const std::size_t nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    if (!line.empty()) {
      if (!out.empty()) out += "; ";
      out += line;
    }
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  return out.empty() ? fmt::format("flags 0x{:x}", flags) : out;
}

}  // namespace

// ------------------------------------------------------------- anchors

// The parsed certificates of one CA file, shared by every context made from
// it while it does not change.
//
// mbedTLS writes into a trusted certificate's key while it verifies a chain
// against it (the RSA blinding state under its own mutex, but an EC key's
// precomputed table with no lock at all), so sessions of different
// contexts, perhaps on different threads, take turns through `verify` for
// their handshakes.
struct TrustAnchors {
  mbedtls_x509_crt chain;
  std::mutex verify;

  TrustAnchors() { mbedtls_x509_crt_init(&chain); }
  ~TrustAnchors() { mbedtls_x509_crt_free(&chain); }
  TrustAnchors(const TrustAnchors&) = delete;
  TrustAnchors& operator=(const TrustAnchors&) = delete;
};

namespace {

// What says a file is the one read before: a rewrite changes its modification
// time (or its size), a replacement (an update of the system bundle renames
// a new file over it) its inode.
struct FileIdentity {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  struct timespec modified {};

  explicit FileIdentity(const struct stat& st)
      : device(st.st_dev), inode(st.st_ino), size(st.st_size), modified(st.st_mtim) {}
  bool operator==(const FileIdentity& o) const noexcept {
    return device == o.device && inode == o.inode && size == o.size &&
           modified.tv_sec == o.modified.tv_sec && modified.tv_nsec == o.modified.tv_nsec;
  }
};

// The CA files parsed so far, for as long as a context holds their anchors:
// each reload of a configuration builds its jwt-auth plugins, and so their
// contexts, again, while the plugins it replaces still hold the same file's
// anchors. Parsing the system bundle costs milliseconds; finding it here
// costs an open and an fstat. An entry no context holds any more is dropped
// when the next file is added, so the cache never outgrows the files in use.
class AnchorCache {
 public:
  std::shared_ptr<TrustAnchors> find(const std::string& path, const FileIdentity& id) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const Entry& e : entries_)
      if (e.path == path && e.id == id) return e.anchors.lock();
    return nullptr;
  }
  void add(const std::string& path, const FileIdentity& id,
           const std::shared_ptr<TrustAnchors>& anchors) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::erase_if(entries_, [&](const Entry& e) { return e.anchors.expired() || e.path == path; });
    entries_.push_back({path, id, anchors});
  }

 private:
  struct Entry {
    std::string path;
    FileIdentity id;
    std::weak_ptr<TrustAnchors> anchors;
  };
  std::mutex mutex_;
  std::vector<Entry> entries_;
};

AnchorCache& anchor_cache() {
  static AnchorCache cache;
  return cache;
}

// Reads all of `fd`.
bool read_all(int fd, std::string& out) {
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) return true;
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
}

// The anchors of `path`: cached when the file is the one parsed before,
// else read and parsed (and cached).
Result<std::shared_ptr<TrustAnchors>> load_anchors(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0) ::close(fd);
    return make_error(ErrorKind::not_found, fmt::format("\"{}\" cannot be read", path));
  }
  // The identity of what is read from this descriptor, not of whatever
  // the path names a moment later.
  const FileIdentity id(st);
  if (auto cached = anchor_cache().find(path, id)) {
    ::close(fd);
    return cached;
  }
  std::string pem;
  const bool read = read_all(fd, pem);
  ::close(fd);
  if (!read) return make_error(ErrorKind::not_found, fmt::format("\"{}\" cannot be read", path));
  auto anchors = std::make_shared<TrustAnchors>();
  // A PEM bundle: mbedTLS wants the terminating NUL counted in the size.
  // Certificates it cannot use (a rare algorithm in a system bundle) are
  // skipped; the rest are anchors.
  const int rc = mbedtls_x509_crt_parse(
      &anchors->chain, reinterpret_cast<const unsigned char*>(pem.c_str()), pem.size() + 1);
  if (rc < 0 || anchors->chain.version == 0)
    return make_error(ErrorKind::malformed,
                      fmt::format("\"{}\" holds no PEM certificate{}", path,
                                  rc < 0 ? " (" + mbedtls_message(rc) + ")" : std::string()));
  anchor_cache().add(path, id, anchors);
  return anchors;
}

}  // namespace

// ------------------------------------------------------------- context

struct TlsClientContext::Impl {
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  std::shared_ptr<TrustAnchors> anchors;
  mbedtls_ssl_config config;

  Impl() {
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_ssl_config_init(&config);
  }
  ~Impl() {
    mbedtls_ssl_config_free(&config);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
};

TlsClientContext::TlsClientContext(std::string ca_file)
    : ca_file_(std::move(ca_file)), impl_(std::make_unique<Impl>()) {}

TlsClientContext::~TlsClientContext() = default;

bool TlsClientContext::shares_anchors_with(const TlsClientContext& other) const noexcept {
  return impl_->anchors == other.impl_->anchors;
}

Result<std::shared_ptr<TlsClientContext>> TlsClientContext::create(std::string_view ca_file) {
  std::shared_ptr<TlsClientContext> ctx(
      new TlsClientContext(std::string(ca_file.empty() ? system_ca_bundle : ca_file)));
  Impl& m = *ctx->impl_;
  auto anchors = load_anchors(ctx->ca_file_);
  if (!anchors) return std::move(anchors).error();
  m.anchors = std::move(*anchors);

  static constexpr std::string_view personal = "portico-tls-client";
  if (const int r = mbedtls_ctr_drbg_seed(&m.drbg, mbedtls_entropy_func, &m.entropy,
                                          reinterpret_cast<const unsigned char*>(personal.data()),
                                          personal.size());
      r != 0)
    return make_error(ErrorKind::invalid_argument,
                      "cannot seed the random generator: " + mbedtls_message(r));

  if (const int r =
          mbedtls_ssl_config_defaults(&m.config, MBEDTLS_SSL_IS_CLIENT,
                                      MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
      r != 0)
    return make_error(ErrorKind::invalid_argument, "cannot set up TLS: " + mbedtls_message(r));
  mbedtls_ssl_conf_authmode(&m.config, MBEDTLS_SSL_VERIFY_REQUIRED);
  mbedtls_ssl_conf_ca_chain(&m.config, &m.anchors->chain, nullptr);
  mbedtls_ssl_conf_rng(&m.config, mbedtls_ctr_drbg_random, &m.drbg);
  mbedtls_ssl_conf_min_version(&m.config, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  return ctx;
}

// ------------------------------------------------------------- session

struct TlsClientSession::Impl {
  mbedtls_ssl_context ssl;
  std::mutex* verify = nullptr;  // the context's anchors', for the handshake
  Impl() { mbedtls_ssl_init(&ssl); }
  ~Impl() { mbedtls_ssl_free(&ssl); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
};

TlsClientSession::TlsClientSession() : impl_(std::make_unique<Impl>()) {}

TlsClientSession::~TlsClientSession() = default;

Result<std::unique_ptr<TlsClientSession>> TlsClientSession::create(TlsClientContext& context,
                                                                   std::string_view server_name) {
  std::unique_ptr<TlsClientSession> s(new TlsClientSession());
  mbedtls_ssl_context& ssl = s->impl_->ssl;
  s->impl_->verify = &context.impl_->anchors->verify;
  if (const int rc = mbedtls_ssl_setup(&ssl, &context.impl_->config); rc != 0)
    return make_error(ErrorKind::invalid_argument, "cannot set up TLS: " + mbedtls_message(rc));
  // The name both goes out as SNI and is what the certificate must name.
  const std::string name(server_name);
  if (const int rc = mbedtls_ssl_set_hostname(&ssl, name.c_str()); rc != 0)
    return make_error(
        ErrorKind::invalid_argument,
        fmt::format("cannot use \"{}\" as the TLS server name: {}", name, mbedtls_message(rc)));
  mbedtls_ssl_set_bio(&ssl, s.get(), bio_send, bio_recv, nullptr);
  return s;
}

int TlsClientSession::bio_send(void* self, const unsigned char* data, std::size_t size) {
  auto* s = static_cast<TlsClientSession*>(self);
  s->out_.append(reinterpret_cast<const char*>(data), size);
  return static_cast<int>(size);
}

int TlsClientSession::bio_recv(void* self, unsigned char* data, std::size_t size) {
  auto* s = static_cast<TlsClientSession*>(self);
  const std::size_t available = s->in_.size() - s->in_used_;
  if (available == 0) return s->peer_eof_ ? 0 : MBEDTLS_ERR_SSL_WANT_READ;
  const std::size_t n = std::min(size, available);
  std::memcpy(data, s->in_.data() + s->in_used_, n);
  s->in_used_ += n;
  if (s->in_used_ == s->in_.size()) {
    s->in_.clear();
    s->in_used_ = 0;
  }
  return static_cast<int>(n);
}

void TlsClientSession::receive(std::string_view ciphertext) {
  in_.append(ciphertext);
}

TlsClientSession::State TlsClientSession::fail(int rc) {
  mbedtls_ssl_context& ssl = impl_->ssl;
  if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
    error_ = "certificate verify failed: " + verify_reasons(mbedtls_ssl_get_verify_result(&ssl));
  } else if (rc == MBEDTLS_ERR_SSL_CONN_EOF && !handshook_) {
    error_ = "the connection closed during the TLS handshake";
  } else if (!handshook_ && (rc == MBEDTLS_ERR_SSL_INVALID_RECORD ||
                             rc == MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION)) {
    // The first bytes back were not a TLS record: an HTTP server, an SSH
    // banner, a wrong port.
    error_ = "the server does not speak TLS (" + mbedtls_message(rc) + ")";
  } else if (rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) {
    error_ = fmt::format("the server refused the TLS {} with a fatal alert",
                         handshook_ ? "session" : "handshake");
  } else {
    error_ =
        fmt::format("TLS {} failed: {}", handshook_ ? "read" : "handshake", mbedtls_message(rc));
  }
  state_ = State::failed;
  return state_;
}

TlsClientSession::State TlsClientSession::step(std::string& plaintext) {
  if (state_ == State::failed || state_ == State::closed) return state_;
  mbedtls_ssl_context& ssl = impl_->ssl;
  if (!handshook_) {
    // The certificate chain is verified in here (see TrustAnchors).
    std::lock_guard<std::mutex> lock(*impl_->verify);
    const int rc = mbedtls_ssl_handshake(&ssl);
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) return state_;
    if (rc != 0) return fail(rc);
    handshook_ = true;
    state_ = State::open;
  }
  for (;;) {
    unsigned char buf[4096];
    const int n = mbedtls_ssl_read(&ssl, buf, sizeof buf);
    if (n > 0) {
      plaintext.append(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(n));
      continue;
    }
    if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE) return state_;
    // The end of the stream, with or without close_notify: what was read
    // up to here is the caller's to judge (HTTP framing says whether it is
    // complete).
    if (n == 0 || n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || n == MBEDTLS_ERR_SSL_CONN_EOF) {
      state_ = State::closed;
      return state_;
    }
    return fail(n);
  }
}

bool TlsClientSession::send(std::string_view plaintext) {
  if (state_ != State::open) {
    if (error_.empty()) error_ = "the TLS session is not open";
    return false;
  }
  mbedtls_ssl_context& ssl = impl_->ssl;
  while (!plaintext.empty()) {
    // The output goes to memory, so mbedTLS takes every record at once;
    // a record holds at most 16 KiB, hence the loop.
    const int n = mbedtls_ssl_write(&ssl, reinterpret_cast<const unsigned char*>(plaintext.data()),
                                    plaintext.size());
    if (n <= 0) {
      fail(n == 0 ? MBEDTLS_ERR_SSL_INTERNAL_ERROR : n);
      return false;
    }
    plaintext.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void TlsClientSession::close() {
  if (close_sent_ || !handshook_ || state_ == State::failed) return;
  close_sent_ = true;
  mbedtls_ssl_close_notify(&impl_->ssl);
}

}  // namespace portico::detail
