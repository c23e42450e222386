#include <algorithm>

#include "policy.hpp"

namespace portico::detail {

void WeightedSampler::reserve(std::size_t n) {
  threshold_.reserve(n);
  alias_.reserve(n);
  scaled_.reserve(n);
  small_.reserve(n);
  large_.reserve(n);
}

void WeightedSampler::rebuild(const Pool& pool) noexcept {
  const std::vector<std::uint32_t>& eligible = pool.eligible();
  size_ = static_cast<std::uint32_t>(eligible.size());
  total_ = 0;
  uniform_ = true;
  for (const std::uint32_t slot : eligible) {
    total_ += pool.at(slot).weight;
    uniform_ = uniform_ && pool.at(slot).weight == pool.at(eligible.front()).weight;
  }
  if (uniform_) return;

  // Every bucket holds `total_` units; endpoint i brings weight_i * size_
  // units. Vose: pair each under-full bucket with an over-full donor.
  threshold_.assign(size_, total_);
  alias_.resize(size_);
  scaled_.clear();
  small_.clear();
  large_.clear();
  for (std::uint32_t i = 0; i < size_; ++i) {
    alias_[i] = i;
    scaled_.push_back(std::uint64_t{pool.at(eligible[i]).weight} * size_);
    (scaled_[i] < total_ ? small_ : large_).push_back(i);
  }
  while (!small_.empty() && !large_.empty()) {
    const std::uint32_t under = small_.back();
    small_.pop_back();
    const std::uint32_t donor = large_.back();
    threshold_[under] = scaled_[under];
    alias_[under] = donor;
    scaled_[donor] -= total_ - scaled_[under];
    if (scaled_[donor] < total_) {
      large_.pop_back();
      small_.push_back(donor);
    }
  }
  // Whatever is left is exactly full (integer arithmetic leaves no
  // rounding residue), so it keeps threshold = total_ and accepts itself.
}

}  // namespace portico::detail
