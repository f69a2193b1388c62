// word2vec's inner loop as one TensorFlow op: negative-sampling SGD applied in place.
//
// The graph path (tftrain/models/word2vec.py) gathers vectors into [pairs, dim] temporaries,
// differentiates and scatters the sparse gradients back: dozens of ops and several copies of
// every touched row per step. This op does what word2vec.c and gensim do instead: for each
// (centre, context) pair, a few dot products and axpy updates on the rows themselves, with
// lock-free parallel updates ("Hogwild") over the batch's centre words. It is the successor
// of the TensorFlow tutorial's word2vec_kernels.cc (NegTrainWord2vec), for resource variables.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/mutex.h"
#include "tensorflow/core/util/determinism.h"
#include "tensorflow/core/util/work_sharder.h"

namespace tftrain {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::Var;
namespace errors = tensorflow::errors;

REGISTER_OP("Word2vecNegativeSamplingStep")
    .Input("input_vectors: resource")
    .Input("output_vectors: resource")
    .Input("center: int32")      // [batch] centre word ids
    .Input("context: int32")     // [batch, slots] context ids, -1 for an empty slot
    .Input("noise_cdf: float")   // [vocabulary] cumulative noise distribution
    .Input("seed: int64")        // [2] stateless seed of this batch
    .Input("learning_rate: float")
    .Attr("negatives: int >= 1")
    .Attr("cbow: bool = false")
    .Attr("cbow_mean: bool = true")
    .Output("loss_sum: float")   // summed negative-sampling loss of the batch, before updates
    .Output("pairs: float")      // (centre, context) pairs (skip-gram) or examples (CBOW)
    .SetIsStateful()
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->Scalar());
      c->set_output(1, c->Scalar());
      return tensorflow::OkStatus();
    });

namespace {

// splitmix64: a counter-based generator, so each centre word's draws depend only on
// (seed, position in the batch), whatever thread runs it.
inline uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

struct Random {
  uint64_t state;
  float Uniform() {  // [0, 1)
    state = Mix(state);
    return static_cast<float>(state >> 40) * (1.0f / 16777216.0f);
  }
};

// log(1 + exp(x)) without overflow.
inline float Softplus(float x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

// sigmoid and softplus looked up in tables over [-kMaxScore, kMaxScore], as word2vec.c's
// EXP_TABLE: exp and log1p would cost as much as the 100-wide dot product they follow.
constexpr float kMaxScore = 6.0f;
constexpr int kTableSize = 2048;

struct Tables {
  float sigmoid[kTableSize + 1];
  float softplus[kTableSize + 1];
  Tables() {
    for (int i = 0; i <= kTableSize; ++i) {
      const double x = (2.0 * i / kTableSize - 1.0) * kMaxScore;
      sigmoid[i] = static_cast<float>(1.0 / (1.0 + std::exp(-x)));
      softplus[i] = static_cast<float>(std::log1p(std::exp(x)));
    }
  }
  static int Index(float x) {
    return static_cast<int>((x + kMaxScore) * (kTableSize / (2.0f * kMaxScore)) + 0.5f);
  }
  float Sigmoid(float x) const {
    if (x <= -kMaxScore) return 0.0f;
    if (x >= kMaxScore) return 1.0f;
    return sigmoid[Index(x)];
  }
  float Softplus(float x) const {
    if (x <= -kMaxScore || x >= kMaxScore) return tftrain::Softplus(x);
    return softplus[Index(x)];
  }
};

const Tables& tables() {
  static const Tables* instance = new Tables();
  return *instance;
}

inline float Dot(const float* a, const float* b, int n) {
  float sum = 0;
  for (int i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

inline void Axpy(float alpha, const float* x, float* y, int n) {
  for (int i = 0; i < n; ++i) y[i] += alpha * x[i];
}

// Gives `var` a buffer of its own before writing in place (another tensor may still share
// it after a read), as TensorFlow's own in-place optimizer kernels do.
Status PrepareForUpdate(OpKernelContext* ctx, Var* var) {
  Tensor* tensor = var->tensor();
  if (var->copy_on_read_mode.load() || !tensor->RefCountIsOne()) {
    Tensor copy;
    TF_RETURN_IF_ERROR(ctx->allocate_temp(tensor->dtype(), tensor->shape(), &copy));
    std::copy_n(tensor->flat<float>().data(), tensor->NumElements(), copy.flat<float>().data());
    *tensor = copy;
  }
  return tensorflow::OkStatus();
}

}  // namespace

class Word2vecNegativeSamplingStepOp : public OpKernel {
 public:
  explicit Word2vecNegativeSamplingStepOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("negatives", &negatives_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("cbow", &cbow_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("cbow_mean", &cbow_mean_));
  }

  void Compute(OpKernelContext* ctx) override {
    tensorflow::core::RefCountPtr<Var> inputs, outputs;
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 0), &inputs));
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 1), &outputs));
    const Tensor& center = ctx->input(2);
    const Tensor& context = ctx->input(3);
    const Tensor& cdf = ctx->input(4);
    const Tensor& seed = ctx->input(5);
    const float rate = ctx->input(6).scalar<float>()();
    OP_REQUIRES(ctx, context.dims() == 2 && center.dims() == 1 &&
                         context.dim_size(0) == center.dim_size(0),
                errors::InvalidArgument("center must be [batch] and context [batch, slots]"));
    OP_REQUIRES(ctx, seed.NumElements() == 2, errors::InvalidArgument("seed must have 2 values"));

    // Both tables locked for the step, in address order (no deadlock with another step).
    Var* first = inputs.get() < outputs.get() ? inputs.get() : outputs.get();
    Var* second = inputs.get() < outputs.get() ? outputs.get() : inputs.get();
    tensorflow::mutex_lock lock_first(*first->mu());
    tensorflow::mutex_lock lock_second(*second->mu());
    OP_REQUIRES_OK(ctx, PrepareForUpdate(ctx, inputs.get()));
    OP_REQUIRES_OK(ctx, PrepareForUpdate(ctx, outputs.get()));
    const Tensor& in_table = *inputs->tensor();
    const Tensor& out_table = *outputs->tensor();
    OP_REQUIRES(ctx, in_table.dims() == 2 && in_table.shape() == out_table.shape() &&
                         in_table.dtype() == tensorflow::DT_FLOAT,
                errors::InvalidArgument("input and output vectors must be float [vocabulary, dim]"));
    const int64_t vocabulary = in_table.dim_size(0);
    const int dim = static_cast<int>(in_table.dim_size(1));
    OP_REQUIRES(ctx, cdf.NumElements() == vocabulary,
                errors::InvalidArgument("noise_cdf must have one value per word"));

    const int64_t batch = center.dim_size(0);
    const int64_t slots = context.dim_size(1);
    const int32_t* centers = center.flat<int32_t>().data();
    const int32_t* contexts = context.flat<int32_t>().data();
    for (int64_t i = 0; i < batch; ++i) {
      OP_REQUIRES(ctx, centers[i] >= 0 && centers[i] < vocabulary,
                  errors::InvalidArgument("centre id ", centers[i], " outside the vocabulary"));
    }
    for (int64_t i = 0; i < batch * slots; ++i) {
      OP_REQUIRES(ctx, contexts[i] < vocabulary,
                  errors::InvalidArgument("context id ", contexts[i], " outside the vocabulary"));
    }

    float* in = inputs->tensor()->flat<float>().data();
    float* out = outputs->tensor()->flat<float>().data();
    const float* noise_cdf = cdf.flat<float>().data();
    const uint64_t key = Mix(static_cast<uint64_t>(seed.flat<int64_t>()(0)) ^
                             Mix(static_cast<uint64_t>(seed.flat<int64_t>()(1))));

    tensorflow::mutex totals_mu;
    double loss_sum = 0, pair_count = 0;

    auto draw = [&](Random& random) -> int32_t {
      // upper_bound without branches (the comparison becomes a conditional move): a
      // mispredicted branch per level would cost more than the search's memory reads.
      const float u = random.Uniform();
      const float* base = noise_cdf;
      int64_t n = vocabulary;
      while (n > 1) {
        const int64_t half = n / 2;
        base = base[half] <= u ? base + half : base;
        n -= half;
      }
      const int64_t id = (base - noise_cdf) + (*base <= u);
      return static_cast<int32_t>(std::min<int64_t>(id, vocabulary - 1));
    };

    // One target word and `negatives` noise words against the hidden vector `h`: adds the
    // hidden vector's gradient step to `error` and updates the output rows in place.
    const Tables& table = tables();
    auto train_pair = [&](const float* h, int32_t target, float* error, Random& random) {
      float loss = 0;
      for (int k = 0; k <= negatives_; ++k) {
        int32_t word = target;
        if (k > 0) {
          word = draw(random);
          if (word == target) continue;  // as word2vec: a noise word equal to the target
        }
        float* row = out + static_cast<int64_t>(word) * dim;
        const float score = Dot(h, row, dim);
        const float label = k == 0 ? 1.0f : 0.0f;
        loss += table.Softplus(k == 0 ? -score : score);
        const float g = (label - table.Sigmoid(score)) * rate;
        // error += g * row and row += g * h in one pass over the row (three distinct
        // buffers: h is an input vector or a local average, row an output vector).
        float* __restrict__ out_row = row;
        float* __restrict__ err = error;
        const float* __restrict__ hidden_row = h;
        for (int i = 0; i < dim; ++i) {
          const float value = out_row[i];
          err[i] += g * value;
          out_row[i] = value + g * hidden_row[i];
        }
      }
      return loss;
    };

    auto work = [&](int64_t begin, int64_t end) {
      std::vector<float> error(dim), hidden(dim);
      double loss = 0, pairs = 0;
      for (int64_t b = begin; b < end; ++b) {
        Random random{Mix(key ^ static_cast<uint64_t>(b))};
        const int32_t* row = contexts + b * slots;
        if (!cbow_) {
          float* h = in + static_cast<int64_t>(centers[b]) * dim;
          for (int64_t s = 0; s < slots; ++s) {
            if (row[s] < 0) continue;
            std::fill(error.begin(), error.end(), 0.0f);
            loss += train_pair(h, row[s], error.data(), random);
            Axpy(1.0f, error.data(), h, dim);
            pairs += 1;
          }
        } else {
          int count = 0;
          std::fill(hidden.begin(), hidden.end(), 0.0f);
          for (int64_t s = 0; s < slots; ++s) {
            if (row[s] < 0) continue;
            Axpy(1.0f, in + static_cast<int64_t>(row[s]) * dim, hidden.data(), dim);
            ++count;
          }
          if (count == 0) continue;
          if (cbow_mean_) {
            for (float& value : hidden) value /= count;
          }
          std::fill(error.begin(), error.end(), 0.0f);
          loss += train_pair(hidden.data(), centers[b], error.data(), random);
          // word2vec.c and gensim add the whole error to every context word (for the mean too).
          for (int64_t s = 0; s < slots; ++s) {
            if (row[s] >= 0) Axpy(1.0f, error.data(), in + static_cast<int64_t>(row[s]) * dim, dim);
          }
          pairs += 1;
        }
      }
      tensorflow::mutex_lock lock(totals_mu);
      loss_sum += loss;
      pair_count += pairs;
    };

    // Under op determinism (train.deterministic) one thread keeps the update order, hence the
    // weights, reproducible; otherwise threads update rows without locks, as word2vec does.
    if (tensorflow::OpDeterminismRequired()) {
      work(0, batch);
    } else {
      auto* threads = ctx->device()->tensorflow_cpu_worker_threads();
      const int64_t cost = std::max<int64_t>(1, slots * (negatives_ + 1) * dim * 6);
      tensorflow::Shard(threads->num_threads, threads->workers, batch, cost, work);
    }

    Tensor* loss_out = nullptr;
    Tensor* pairs_out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &loss_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({}), &pairs_out));
    loss_out->scalar<float>()() = static_cast<float>(loss_sum);
    pairs_out->scalar<float>()() = static_cast<float>(pair_count);
  }

 private:
  int negatives_;
  bool cbow_, cbow_mean_;
};

REGISTER_KERNEL_BUILDER(Name("Word2vecNegativeSamplingStep").Device(DEVICE_CPU),
                        Word2vecNegativeSamplingStepOp);

}  // namespace tftrain
