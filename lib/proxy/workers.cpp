// Workers: one loop, one thread and one Server per worker, all on one
// SO_REUSEPORT port.
//
// Everything that can fail (validation, binding, loop and handle setup,
// thread creation) happens on the caller's thread before start() returns;
// a worker thread only runs its loop. The cross-thread entries are each
// worker's two uv_async_t: one asks its loop to stop its Server, the other
// to run a task on it (installing a reload, a look at its clusters) while
// the caller waits.
//
// The routes are compiled once (one RouteSet: the router, the filter
// chains) and shared by every worker's table; only the clusters, whose
// pools and balancers are per loop, are made once per worker. A reload does
// all of that on the caller's thread, so a worker's loop only swaps tables.
#include "portico/workers.hpp"

#include "session.hpp"

#include <uv.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace portico::proxy {

namespace {

// Handles point into a Worker, so it never moves (it is held by unique_ptr).
struct Worker {
  uv_loop_t loop{};
  bool loop_open = false;
  std::unique_ptr<Server> server;
  bool listening = false;
  uv_async_t stop_request{};
  bool stop_request_open = false;
  std::atomic<Duration::rep> drain{0};  // written by the stopping thread, read by the loop
  std::thread thread;
  unsigned index = 0;
  // A task for the loop (run_on_each): guarded by `tasks->mutex`.
  uv_async_t task_request{};
  bool task_request_open = false;
  struct TaskBoard* tasks = nullptr;
  const std::function<void(unsigned, Server&)>* task = nullptr;
};

// Where run_on_each waits for the workers' loops to run its task.
struct TaskBoard {
  std::mutex mutex;
  std::condition_variable done;
  unsigned pending = 0;
};

void finish_task(Worker* w) {
  std::lock_guard<std::mutex> lock(w->tasks->mutex);
  if (w->task == nullptr) return;
  w->task = nullptr;
  if (--w->tasks->pending == 0) w->tasks->done.notify_all();
}

void on_task_request(uv_async_t* a) {
  auto* w = static_cast<Worker*>(a->data);
  const std::function<void(unsigned, Server&)>* task = nullptr;
  {
    std::lock_guard<std::mutex> lock(w->tasks->mutex);
    task = w->task;
  }
  if (task == nullptr) return;
  (*task)(w->index, *w->server);
  finish_task(w);
}

// On the worker's loop: the Server stops, then the async handle closes, which
// leaves the loop with no handles, so uv_run returns.
void stop_server(Worker* w) {
  w->server->stop(Duration(w->drain.load()), [w] {
    if (w->stop_request_open) uv_close(reinterpret_cast<uv_handle_t*>(&w->stop_request), nullptr);
    if (w->task_request_open) {
      w->task_request_open = false;
      uv_close(reinterpret_cast<uv_handle_t*>(&w->task_request), nullptr);
      finish_task(w);  // a task that arrived too late is not run
    }
  });
}

void on_stop_request(uv_async_t* a) {
  stop_server(static_cast<Worker*>(a->data));
}

Error uv_failure(const std::string& what, int uv_error) {
  return make_error(ErrorKind::capacity, what + ": " + uv_strerror(uv_error));
}

// Runs on the stopping thread, after every worker has been asked to stop: a
// worker whose thread never started (start() failed part way) is stopped
// and run to completion here.
void finish(Worker& w) {
  if (w.thread.joinable()) {
    w.thread.join();
  } else if (w.loop_open) {
    if (w.listening) stop_server(&w);
    uv_run(&w.loop, UV_RUN_DEFAULT);  // also completes the close of a listener that failed
  }
  if (w.loop_open) {
    uv_loop_close(&w.loop);  // no handle is left: the loop ran until it had none
    w.loop_open = false;
  }
}

}  // namespace

class WorkersImpl {
 public:
  ~WorkersImpl() { stop(Duration::zero()); }

  Status add_worker(const ServerOptions& options, const std::shared_ptr<const RouteSet>& set);
  Status reload(ServerOptions options);
  Status run_on_each(const std::function<void(unsigned, Server&)>& task);
  Status start_threads();
  void stop(Duration drain);
  bool on_worker_thread() const;

  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread::id> thread_ids;  // fixed once start() returns
  std::uint16_t port = 0;
  mutable std::mutex mutex;  // serialises stop() and run_on_each(), guards `stopped`
  bool stopped = false;
  TaskBoard tasks;
};

Status WorkersImpl::add_worker(const ServerOptions& options,
                               const std::shared_ptr<const RouteSet>& set) {
  Worker& w = *workers.emplace_back(std::make_unique<Worker>());
  if (int rc = uv_loop_init(&w.loop); rc != 0) return uv_failure("uv_loop_init", rc);
  w.loop_open = true;
  auto server = Server::create(&w.loop, options, set);
  if (!server) return std::move(server).error();
  w.server = std::move(*server);
  if (auto st = w.server->start(); !st) return st;
  w.listening = true;
  if (int rc = uv_async_init(&w.loop, &w.stop_request, on_stop_request); rc != 0)
    return uv_failure("uv_async_init", rc);
  w.stop_request.data = &w;
  w.stop_request_open = true;
  if (int rc = uv_async_init(&w.loop, &w.task_request, on_task_request); rc != 0)
    return uv_failure("uv_async_init", rc);
  w.task_request.data = &w;
  w.task_request_open = true;
  w.tasks = &tasks;
  w.index = static_cast<unsigned>(workers.size() - 1);
  return {};
}

Status WorkersImpl::start_threads() {
  for (auto& w : workers) {
    uv_loop_t* loop = &w->loop;
    try {
      w->thread = std::thread([loop] { uv_run(loop, UV_RUN_DEFAULT); });
    } catch (const std::system_error& e) {
      return make_error(ErrorKind::capacity,
                        std::string("cannot start a worker thread: ") + e.what());
    }
    thread_ids.push_back(w->thread.get_id());
  }
  return {};
}

bool WorkersImpl::on_worker_thread() const {
  return std::find(thread_ids.begin(), thread_ids.end(), std::this_thread::get_id()) !=
         thread_ids.end();
}

void WorkersImpl::stop(Duration drain) {
  if (on_worker_thread()) return;  // it would wait for itself
  std::lock_guard<std::mutex> lock(mutex);
  if (stopped) return;
  stopped = true;
  // Every worker is asked first, so they drain at the same time.
  for (auto& w : workers) {
    w->drain.store(drain.count());
    if (w->thread.joinable()) uv_async_send(&w->stop_request);
  }
  for (auto& w : workers)
    finish(*w);
}

// ---------------------------------------------------------------- Workers

Workers::Workers(std::unique_ptr<WorkersImpl> impl) : impl_(std::move(impl)) {}
Workers::~Workers() = default;

Result<std::unique_ptr<Workers>> Workers::start(ServerOptions options, unsigned threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  options.reuse_port = true;
  // The routes are compiled once for every worker; each worker's options
  // are the listener's only.
  auto set = compile_route_set(options);
  if (!set) return std::move(set).error();
  auto impl = std::make_unique<WorkersImpl>();
  const unsigned first_index = options.worker_index;
  for (unsigned i = 0; i < threads; ++i) {
    options.worker_index = first_index + i;
    if (auto st = impl->add_worker(options, *set); !st) {
      if (i == 0) return std::move(st).error();
      return make_error(st.error().kind, "worker " + std::to_string(i) + " of " +
                                             std::to_string(threads) + ": " + st.error().message);
    }
    if (i == 0) options.port = impl->port = impl->workers[0]->server->port();
  }
  if (auto st = impl->start_threads(); !st) return std::move(st).error();
  return std::unique_ptr<Workers>(new Workers(std::move(impl)));
}

std::uint16_t Workers::port() const noexcept {
  return impl_->port;
}

unsigned Workers::size() const noexcept {
  return static_cast<unsigned>(impl_->workers.size());
}

void Workers::stop(Duration drain) {
  impl_->stop(drain);
}

ServerStats Workers::stats() const {
  ServerStats sum;
  for (const auto& w : impl_->workers) {
    const ServerStats s = w->server->stats();
    sum.connections_accepted += s.connections_accepted;
    sum.connections_active += s.connections_active;
    sum.requests += s.requests;
    sum.upstream_connections_opened += s.upstream_connections_opened;
    sum.upstream_connections_reused += s.upstream_connections_reused;
    sum.reloads = std::max(sum.reloads, s.reloads);
  }
  return sum;
}

Status Workers::run_on_each(const std::function<void(unsigned index, Server& server)>& task) {
  return impl_->run_on_each(task);
}

Status WorkersImpl::run_on_each(const std::function<void(unsigned index, Server& server)>& task) {
  if (on_worker_thread())
    return make_error(ErrorKind::invalid_argument,
                      "run_on_each cannot be called from a worker's thread");
  std::lock_guard<std::mutex> serial(mutex);
  if (stopped) return make_error(ErrorKind::invalid_argument, "the workers are stopped");
  std::unique_lock<std::mutex> lock(tasks.mutex);
  for (auto& w : workers) {
    w->task = &task;
    ++tasks.pending;
    uv_async_send(&w->task_request);
  }
  tasks.done.wait(lock, [&] { return tasks.pending == 0; });
  return {};
}

Status Workers::reload(ServerOptions options) {
  return impl_->reload(std::move(options));
}

// All or none: every worker's table is made here, on the caller's thread,
// before any worker installs one, so an error leaves every worker as it was.
// The workers' loops then only swap tables (Server::install).
Status WorkersImpl::reload(ServerOptions options) {
  if (on_worker_thread())
    return make_error(ErrorKind::invalid_argument,
                      "reload cannot be called from a worker's thread");
  auto set = compile_route_set(options);
  if (!set) return std::move(set).error();
  std::vector<PreparedRoutes> prepared;
  prepared.reserve(workers.size());
  for (std::size_t i = 0; i < workers.size(); ++i) {
    auto p = workers[i]->server->prepare(*set);
    if (!p)
      return make_error(p.error().kind, "worker " + std::to_string(i) + ": " + p.error().message);
    prepared.push_back(std::move(*p));
  }
  set->reset();  // the tables hold it now
  std::mutex errors_mutex;
  Status first{};
  auto st = run_on_each([&](unsigned index, Server& server) {
    if (auto r = server.install(std::move(prepared[index])); !r) {
      std::lock_guard<std::mutex> lock(errors_mutex);
      if (first)
        first = make_error(r.error().kind,
                           "worker " + std::to_string(index) + ": " + r.error().message);
    }
  });
  if (!st) return st;
  return first;
}

}  // namespace portico::proxy
