#include "control_loop.hpp"

namespace portico::detail {

ControlLoop::ControlLoop() {
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &wake_, on_wake);
  wake_.data = this;
}

ControlLoop::~ControlLoop() {
  stop([] {});
  uv_loop_close(&loop_);
}

void ControlLoop::start() {
  thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
}

bool ControlLoop::on_loop_thread() const noexcept {
  return thread_.get_id() == std::this_thread::get_id();
}

void ControlLoop::on_wake(uv_async_t* a) {
  static_cast<ControlLoop*>(a->data)->drain_posted();
}

void ControlLoop::drain_posted() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    tasks.swap(posted_);
  }
  for (auto& t : tasks)
    t();
}

void ControlLoop::post(std::function<void()> task) {
  if (on_loop_thread()) {
    task();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    posted_.push_back(std::move(task));
  }
  uv_async_send(&wake_);
}

void ControlLoop::run(const std::function<void()>& task) {
  if (on_loop_thread() || !thread_.joinable()) {
    task();
    return;
  }
  std::mutex m;
  std::condition_variable cv;
  bool ran = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    posted_.push_back([&] {
      task();
      std::lock_guard<std::mutex> l(m);
      ran = true;
      cv.notify_all();
    });
  }
  uv_async_send(&wake_);
  std::unique_lock<std::mutex> lock(m);
  cv.wait(lock, [&] { return ran; });
}

void ControlLoop::stop(const std::function<void()>& closer) {
  if (on_loop_thread()) return;  // it would wait for itself
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    // Tasks posted so far still run; later ones are dropped.
    posted_.push_back([this, &closer] {
      closer();
      uv_close(reinterpret_cast<uv_handle_t*>(&wake_), nullptr);
    });
    stopping_ = true;
  }
  uv_async_send(&wake_);
  if (thread_.joinable()) {
    thread_.join();
  } else {
    uv_run(&loop_, UV_RUN_DEFAULT);  // never started: run the closing here
  }
  stopped_ = true;
}

}  // namespace portico::detail
