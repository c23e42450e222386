// Several Servers on one port, one per thread, for the cores a single loop
// cannot use.
//
// Each worker is a thread with its own uv loop and its own Server (proxy.hpp)
// bound with SO_REUSEPORT to the same address and port, so the kernel
// spreads incoming connections over the workers; a connection then stays on
// the worker that accepted it. Workers share nothing at run time: each has
// its own keep-alive pools, buffers and counters.
//
// The embedding contract: Workers starts threads (that is its purpose) but
// installs no signal handlers and never exits or aborts; the host decides
// when to stop() (from its own signal handling, for instance).
//
// Threading: the routes are compiled once and shared read-only by every
// worker (only the clusters, with their pools, are per worker), so a
// Handler (and whatever it captures) is called on several threads at once
// and must be safe for that. Workers' own methods may be called from any
// thread; stop() does nothing on a worker's thread (see there).
//
// SO_REUSEPORT also lets another listener of the same user join the port if
// it sets the option too: a second process started on the same port by
// mistake shares the traffic instead of failing with "address in use".
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "portico/clock.hpp"
#include "portico/export.hpp"
#include "portico/proxy.hpp"
#include "portico/result.hpp"

namespace portico::proxy {

class WorkersImpl;

class PORTICO_API Workers {
 public:
  // Starts `threads` workers (0: one per core, std::thread::hardware_concurrency()),
  // each serving a copy of `options` with reuse_port set.
  //
  // The options are validated (Server::create) and every listener is bound
  // on the calling thread before any worker thread starts, so configuration
  // errors and bind errors (a port in use) are returned, not logged. With
  // port 0 the first worker picks an ephemeral port and the others bind the
  // same one.
  static Result<std::unique_ptr<Workers>> start(ServerOptions options, unsigned threads = 0);

  // Stops with no drain (closing connections in flight) if stop() has not
  // been called, and joins the threads.
  ~Workers();
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  // The port every worker listens on.
  std::uint16_t port() const noexcept;
  // The number of workers.
  unsigned size() const noexcept;

  // Graceful stop: every worker stops accepting, lets requests in flight
  // finish for up to `drain`, then closes every connection. Blocks until all
  // worker threads have exited. Idempotent: a later call (or one racing with
  // it from another thread) returns once the first has finished. Called
  // from a worker's thread (a Handler) it does nothing, as it would wait for
  // that thread itself; stop from another thread.
  void stop(Duration drain);

  // The workers' statistics, summed (live: each counter is read atomically,
  // the sum is not one instant's).
  ServerStats stats() const;

  // Runs `task` on every worker's thread, with its index and Server, and
  // returns when all have run it (or stopped). Not from a worker's thread.
  Status run_on_each(const std::function<void(unsigned index, Server& server)>& task);
  // Replaces every worker's clusters, routes and global filters (see
  // Server::reload). The expensive part runs on the calling thread: the
  // routes are validated and compiled once and every worker's table is
  // prepared (Server::prepare) before any worker changes, so either all
  // switch or (a bad set) none does. The workers' loops then only install
  // their table (Server::install), a swap, so they keep serving while a
  // large set compiles. Blocks until every worker has installed. Not from a
  // worker's thread.
  Status reload(ServerOptions options);

 private:
  explicit Workers(std::unique_ptr<WorkersImpl> impl);
  std::unique_ptr<WorkersImpl> impl_;
};

}  // namespace portico::proxy
