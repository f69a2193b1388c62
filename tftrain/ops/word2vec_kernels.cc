// word2vec's training as one TensorFlow op: from a batch of token ids to negative-sampling
// SGD applied in place.
//
// The graph path (tftrain/models/word2vec.py) builds context windows with TensorFlow ops,
// gathers vectors into [pairs, dim] temporaries, differentiates and scatters the sparse
// gradients back. This op does what word2vec.c and gensim do instead. It sub-samples the
// batch's words, draws each kept word's reduced window, and for every (centre, context) pair
// runs a few dot products and axpy updates on the rows themselves, with lock-free parallel
// updates ("Hogwild") over the batch's centre words. It is the successor of the TensorFlow
// tutorial's word2vec_kernels.cc (SkipgramWord2vec + NegTrainWord2vec), for resource
// variables.
//
// Every random choice (keep a word, its window, its noise words) is
// drawn from a counter-based generator keyed by (seed, position in the batch), so a batch's
// draws do not depend on the thread that runs it, and a resumed run draws the same.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/denormal.h"
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

REGISTER_OP("Word2vecTrainTokens")
    .Input("input_vectors: resource")
    .Input("output_vectors: resource")
    .Input("tokens: int32")           // [n] word ids in text order; -1 ends a sentence
    .Input("keep: float")             // [vocabulary] probability of keeping a word (sub-sampling)
    .Input("noise_accept: float")     // [vocabulary] alias table of the noise distribution:
    .Input("noise_alias: int32")      //   bucket i is word i with probability accept[i], else alias[i]
    .Input("seed: int64")             // [2] stateless seed of this batch
    .Input("learning_rate: float")
    .Attr("window: int >= 1")
    .Attr("negatives: int >= 1")
    .Attr("cbow: bool = false")
    .Attr("cbow_mean: bool = true")
    .Output("loss_sum: float")        // summed negative-sampling loss of the batch, before updates
    .Output("pairs: float")           // (centre, context) pairs (skip-gram) or examples (CBOW)
    .Output("kept: float")            // words kept by the sub-sampling
    .SetIsStateful()
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      for (int i = 0; i < 3; ++i) c->set_output(i, c->Scalar());
      return tensorflow::OkStatus();
    });

namespace {

// splitmix64: a counter-based generator, so each draw depends only on (seed, position).
inline uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

struct Random {
  uint64_t state;
  uint64_t Next() { return state = Mix(state); }
  float Uniform() { return static_cast<float>(Next() >> 40) * (1.0f / 16777216.0f); }  // [0, 1)
};

// Streams of random numbers kept apart by salt.
constexpr uint64_t kKeepSalt = 0x6b656570ULL, kReachSalt = 0x7265616368ULL,
                   kNoiseSalt = 0x6e6f697365ULL;

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

inline float Dot(const float* __restrict__ a, const float* __restrict__ b, int n) {
  float sum = 0;
  for (int i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

inline void Axpy(float alpha, const float* __restrict__ x, float* __restrict__ y, int n) {
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

// The batch after sub-sampling: kept word ids, the sentence of each, and a reduced window
// ("reach", 1..window) per kept word, as word2vec.c's `b`.
struct Kept {
  std::vector<int32_t> words;
  std::vector<int32_t> sentence;
  std::vector<int32_t> reach;
};

Kept Subsample(const int32_t* tokens, int64_t n, const float* keep, uint64_t key, int window) {
  const uint64_t keep_key = Mix(key ^ kKeepSalt), reach_key = Mix(key ^ kReachSalt);
  Kept kept;
  kept.words.reserve(n);
  kept.sentence.reserve(n);
  int32_t sentence = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t word = tokens[i];
    if (word < 0) {
      ++sentence;
      continue;
    }
    const float p = keep[word];
    if (p < 1.0f) {
      Random random{keep_key + static_cast<uint64_t>(i)};
      if (random.Uniform() >= p) continue;
    }
    kept.words.push_back(word);
    kept.sentence.push_back(sentence);
  }
  kept.reach.resize(kept.words.size());
  for (size_t j = 0; j < kept.words.size(); ++j) {
    kept.reach[j] = 1 + static_cast<int32_t>(Mix(reach_key + j) % window);
  }
  return kept;
}

}  // namespace

class Word2vecTrainTokensOp : public OpKernel {
 public:
  explicit Word2vecTrainTokensOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("window", &window_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("negatives", &negatives_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("cbow", &cbow_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("cbow_mean", &cbow_mean_));
  }

  void Compute(OpKernelContext* ctx) override {
    tensorflow::core::RefCountPtr<Var> inputs, outputs;
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 0), &inputs));
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 1), &outputs));
    const Tensor& tokens = ctx->input(2);
    const Tensor& keep = ctx->input(3);
    const Tensor& accept = ctx->input(4);
    const Tensor& alias = ctx->input(5);
    const Tensor& seed = ctx->input(6);
    const float rate = ctx->input(7).scalar<float>()();
    OP_REQUIRES(ctx, tokens.dims() == 1, errors::InvalidArgument("tokens must be [n]"));
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
                         in_table.dtype() == tensorflow::DT_FLOAT &&
                         out_table.dtype() == tensorflow::DT_FLOAT,
                errors::InvalidArgument("input and output vectors must be float [vocabulary, dim]"));
    const int64_t vocabulary = in_table.dim_size(0);
    const int dim = static_cast<int>(in_table.dim_size(1));
    OP_REQUIRES(ctx,
                keep.NumElements() == vocabulary && accept.NumElements() == vocabulary &&
                    alias.NumElements() == vocabulary,
                errors::InvalidArgument("keep, noise_accept and noise_alias need one value per word"));
    const int32_t* aliases = alias.flat<int32_t>().data();
    for (int64_t i = 0; i < vocabulary; ++i) {
      OP_REQUIRES(ctx, aliases[i] >= 0 && aliases[i] < vocabulary,
                  errors::InvalidArgument("noise alias ", aliases[i], " outside the vocabulary"));
    }
    const int64_t n = tokens.NumElements();
    const int32_t* ids = tokens.flat<int32_t>().data();
    for (int64_t i = 0; i < n; ++i) {
      OP_REQUIRES(ctx, ids[i] >= -1 && ids[i] < vocabulary,
                  errors::InvalidArgument("token id ", ids[i], " outside the vocabulary"));
    }

    const uint64_t key = Mix(static_cast<uint64_t>(seed.flat<int64_t>()(0)) ^
                             Mix(static_cast<uint64_t>(seed.flat<int64_t>()(1))));
    const Kept kept = Subsample(ids, n, keep.flat<float>().data(), key, window_);
    const int64_t count = static_cast<int64_t>(kept.words.size());

    float* in = inputs->tensor()->flat<float>().data();
    float* out = outputs->tensor()->flat<float>().data();
    const float* accepts = accept.flat<float>().data();

    // A noise word by the alias method: one bucket, one coin; two reads whatever the
    // vocabulary (a binary search over the cumulative distribution needs log2(V)).
    auto draw = [&](Random& random) -> int32_t {
      const uint64_t bits = random.Next();
      const int64_t bucket = static_cast<int64_t>((bits >> 32) * static_cast<uint64_t>(vocabulary) >> 32);
      const float coin = static_cast<float>(bits & 0xFFFFFF) * (1.0f / 16777216.0f);
      return coin < accepts[bucket] ? static_cast<int32_t>(bucket) : aliases[bucket];
    };

    // One target word and `negatives` noise words against the hidden vector `h`: adds the
    // hidden vector's gradient step to `error` and updates the output rows in place.
    const Tables& table = tables();
    // `targets` is scratch space for negatives + 1 ids.
    auto train_pair = [&](const float* h, int32_t target, float* error, Random& random,
                          int32_t* targets) {
      // Draw the noise words first and ask for all their rows at once: each is a random row
      // of a table larger than the L2 cache, and waiting for them one by one was the op's
      // largest cost.
      int count = 0;
      targets[count++] = target;
      for (int k = 0; k < negatives_; ++k) {
        const int32_t word = draw(random);
        if (word != target) targets[count++] = word;  // as word2vec: skip the target itself
      }
      for (int k = 0; k < count; ++k) {
        const char* row = reinterpret_cast<const char*>(out + static_cast<int64_t>(targets[k]) * dim);
        for (int64_t line = 0; line < dim * 4; line += 64) __builtin_prefetch(row + line, 1);
      }
      float loss = 0;
      for (int k = 0; k < count; ++k) {
        float* row = out + static_cast<int64_t>(targets[k]) * dim;
        const float score = Dot(h, row, dim);
        loss += table.Softplus(k == 0 ? -score : score);
        // As gensim: no update outside the sigmoid table's range. (word2vec.c pushes a
        // saturated wrong score at the full rate, which late in training costs accuracy.)
        if (score <= -kMaxScore || score >= kMaxScore) continue;
        const float g = ((k == 0 ? 1.0f : 0.0f) - table.Sigmoid(score)) * rate;
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

    const uint64_t noise_key = Mix(key ^ kNoiseSalt);
    tensorflow::mutex totals_mu;
    double loss_sum = 0, pair_count = 0;
    const int32_t* words = kept.words.data();
    const int32_t* sentences = kept.sentence.data();
    auto work = [&](int64_t begin, int64_t end) {
      // Early in training the output vectors are near zero and their products underflow:
      // denormal arithmetic is many times slower (a third of a first PTB epoch).
      tensorflow::port::ScopedFlushDenormal flush_denormals;
      std::vector<float> error(dim), hidden(dim);
      std::vector<int32_t> targets(negatives_ + 1);
      double loss = 0, pairs = 0;
      for (int64_t j = begin; j < end; ++j) {
        Random random{noise_key + static_cast<uint64_t>(j)};
        const int64_t from = std::max<int64_t>(0, j - kept.reach[j]);
        const int64_t to = std::min<int64_t>(count - 1, j + kept.reach[j]);
        if (!cbow_) {
          // As word2vec.c and gensim: each context word's input vector predicts the centre.
          for (int64_t c = from; c <= to; ++c) {
            if (c == j || sentences[c] != sentences[j]) continue;
            float* h = in + static_cast<int64_t>(words[c]) * dim;
            std::fill(error.begin(), error.end(), 0.0f);
            loss += train_pair(h, words[j], error.data(), random, targets.data());
            Axpy(1.0f, error.data(), h, dim);
            pairs += 1;
          }
        } else {
          int context = 0;
          std::fill(hidden.begin(), hidden.end(), 0.0f);
          for (int64_t c = from; c <= to; ++c) {
            if (c == j || sentences[c] != sentences[j]) continue;
            Axpy(1.0f, in + static_cast<int64_t>(words[c]) * dim, hidden.data(), dim);
            ++context;
          }
          if (context == 0) continue;
          if (cbow_mean_) {
            for (float& value : hidden) value /= context;
          }
          std::fill(error.begin(), error.end(), 0.0f);
          loss += train_pair(hidden.data(), words[j], error.data(), random, targets.data());
          // word2vec.c and gensim add the whole error to every context word (for the mean too).
          for (int64_t c = from; c <= to; ++c) {
            if (c == j || sentences[c] != sentences[j]) continue;
            Axpy(1.0f, error.data(), in + static_cast<int64_t>(words[c]) * dim, dim);
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
      work(0, count);
    } else {
      auto* threads = ctx->device()->tensorflow_cpu_worker_threads();
      const int64_t cost = std::max<int64_t>(1, 2 * window_ * (negatives_ + 1) * dim * 3);
      tensorflow::Shard(threads->num_threads, threads->workers, count, cost, work);
    }

    const float totals[3] = {static_cast<float>(loss_sum), static_cast<float>(pair_count),
                             static_cast<float>(count)};
    for (int i = 0; i < 3; ++i) {
      Tensor* output = nullptr;
      OP_REQUIRES_OK(ctx, ctx->allocate_output(i, TensorShape({}), &output));
      output->scalar<float>()() = totals[i];
    }
  }

 private:
  int window_, negatives_;
  bool cbow_, cbow_mean_;
};

REGISTER_KERNEL_BUILDER(Name("Word2vecTrainTokens").Device(DEVICE_CPU), Word2vecTrainTokensOp);

}  // namespace tftrain
