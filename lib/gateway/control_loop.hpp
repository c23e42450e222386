// The gateway's control thread: a libuv loop of its own for the admin
// listener and the policies' background work (JWKS fetches), and a way for
// other threads to run a task on it and wait.
#pragma once

#include <uv.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace portico::detail {

class ControlLoop {
 public:
  ControlLoop();
  ~ControlLoop();  // stop() if not done
  ControlLoop(const ControlLoop&) = delete;
  ControlLoop& operator=(const ControlLoop&) = delete;

  uv_loop_t* loop() noexcept { return &loop_; }
  // Starts the thread; before, the loop belongs to the constructing thread.
  void start();
  bool on_loop_thread() const noexcept;
  // Runs `task` on the loop thread and returns when it has run (at once
  // when called on the loop thread). After stop() the task runs nowhere.
  void run(const std::function<void()>& task);
  // Runs `task` on the loop thread: some time later from another thread
  // (dropped once stop() began), at once on the loop thread.
  void post(std::function<void()> task);
  // Runs `closer` on the loop thread to close the handles the loop still
  // has, then joins the thread once the loop has none left.
  void stop(const std::function<void()>& closer);

 private:
  static void on_wake(uv_async_t* a);
  void drain_posted();

  uv_loop_t loop_{};
  uv_async_t wake_{};
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable done_;
  std::vector<std::function<void()>> posted_;
  bool stopping_ = false;
  bool stopped_ = false;
};

}  // namespace portico::detail
