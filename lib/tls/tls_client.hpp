// A TLS 1.2 client over mbedTLS that does no I/O of its own.
//
// The caller owns the socket (a libuv stream, say): it hands every byte that
// arrives to receive(), calls step() to move the handshake and the reads on,
// and sends whatever take_output() returns. mbedTLS only ever sees memory
// buffers (mbedtls_ssl_set_bio over them), so it never blocks, never needs a
// thread, and the caller's loop decides when anything happens — including
// the timeout, which is the caller's timer.
//
// TlsClientContext: what the sessions of one client share — the trust
// anchors (a CA bundle in PEM, the system's by default), the mbedTLS
// configuration (peer verification required, TLS 1.2 at least) and a CTR-DRBG
// seeded once from the system's entropy. Contexts made from a CA file that
// has not changed (same inode, size and modification time) share its
// parsed certificates instead of parsing it again, for as long as one of
// them lives: a reload that rebuilds a context costs an fstat, not a parse.
// TlsClientSession: one connection; verifies the server's certificate chain
// against the context's anchors and its name against `server_name` (sent as
// SNI too).
//
// Threading: a context and its sessions belong to one thread at a time (a
// fetcher's loop). A context must outlive its sessions. Contexts sharing a
// CA file's certificates may live on different threads: their sessions'
// handshakes take turns (a lock held by step() while it verifies), off any
// request path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "portico/result.hpp"

namespace portico::detail {

// The CA bundle of Debian's ca-certificates package.
inline constexpr std::string_view system_ca_bundle = "/etc/ssl/certs/ca-certificates.crt";

class TlsClientContext {
 public:
  // Loads the PEM certificates of `ca_file` (empty: the system bundle) and
  // seeds the random generator. Fails saying why: the file cannot be read,
  // holds no certificate, or the entropy source does not answer.
  static Result<std::shared_ptr<TlsClientContext>> create(std::string_view ca_file);
  ~TlsClientContext();
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;

  // The bundle the anchors came from, for messages.
  const std::string& ca_file() const noexcept { return ca_file_; }
  // Whether both hold the same parsed certificates (one CA file, unchanged).
  bool shares_anchors_with(const TlsClientContext& other) const noexcept;

 private:
  friend class TlsClientSession;
  struct Impl;
  explicit TlsClientContext(std::string ca_file);
  std::string ca_file_;
  std::unique_ptr<Impl> impl_;
};

class TlsClientSession {
 public:
  enum class State : std::uint8_t {
    handshaking,  // step() again once more bytes arrive
    open,         // the handshake is done: send() and read plaintext
    closed,       // the server ended the stream (close_notify or end of file)
    failed,       // error() says why; nothing more happens
  };

  // A session that will verify `server_name` (a DNS name or an IP address
  // literal as written in the URL). `context` must outlive it.
  static Result<std::unique_ptr<TlsClientSession>> create(TlsClientContext& context,
                                                          std::string_view server_name);
  ~TlsClientSession();
  TlsClientSession(const TlsClientSession&) = delete;
  TlsClientSession& operator=(const TlsClientSession&) = delete;

  // Bytes from the server, in order. `receive_eof` once the socket ends.
  void receive(std::string_view ciphertext);
  void receive_eof() noexcept { peer_eof_ = true; }

  // Runs the handshake as far as the received bytes allow, then decrypts
  // what it can into `plaintext` (appended). Returns the state after.
  State step(std::string& plaintext);

  // Encrypts `plaintext` for sending; only when open. False on failure
  // (error() says why).
  bool send(std::string_view plaintext);

  // Sends a close_notify alert (once, when open).
  void close();

  // Ciphertext waiting to be written to the socket; moves it out.
  std::string take_output() noexcept { return std::move(out_); }
  bool has_output() const noexcept { return !out_.empty(); }

  State state() const noexcept { return state_; }
  bool handshake_done() const noexcept { return handshook_; }
  // Why the session failed: "certificate verify failed: ...", "the
  // server does not speak TLS (...)", "the connection closed during the TLS
  // handshake", ...
  const std::string& error() const noexcept { return error_; }

 private:
  struct Impl;
  TlsClientSession();
  static int bio_send(void* self, const unsigned char* data, std::size_t size);
  static int bio_recv(void* self, unsigned char* data, std::size_t size);
  State fail(int rc);

  std::unique_ptr<Impl> impl_;
  std::string in_;  // received ciphertext not yet consumed by mbedTLS
  std::size_t in_used_ = 0;
  std::string out_;  // ciphertext to send
  bool peer_eof_ = false;
  bool handshook_ = false;
  bool close_sent_ = false;
  State state_ = State::handshaking;
  std::string error_;
};

}  // namespace portico::detail
