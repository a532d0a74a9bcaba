/* A branch-free evaluator of HistGradientBoosting's trees (benchmarks/predict_probe.py; not ml-batch's scoring).
 *
 * It walks a block of B rows down one tree at a time, all rows one level per step, with no data-dependent
 * branch: each row's next node is chosen by a conditional move, and a leaf points to itself, so a tree takes
 * as many steps as its deepest leaf. The B rows' walks are independent, so their loads overlap. Each step
 * is scikit-learn's rule (`_predict_one_from_raw_data`): NaN goes where the node's missing values went,
 * else left when x <= threshold. The leaves' values are added tree after tree, from the baseline, in
 * scikit-learn's order, so the raw scores are the same doubles. */
#include <stdint.h>

typedef struct {
  double threshold;
  int32_t feature;
  int32_t left;   /* a leaf: itself */
  int32_t right;  /* a leaf: itself */
  int32_t missing_left;
} node_t;

#define B 64

void raw_predict(const node_t *nodes, const double *values, const int32_t *roots, const int32_t *depths,
                 int32_t trees, double baseline, const double *x, int32_t features, int64_t rows, double *out) {
  for (int64_t first = 0; first < rows; first += B) {
    const int block = (rows - first) < B ? (int)(rows - first) : B;
    const double *rowx = x + first * features;
    double sum[B];
    int32_t at[B];
    for (int k = 0; k < block; k++) sum[k] = baseline;
    for (int32_t t = 0; t < trees; t++) {
      for (int k = 0; k < block; k++) at[k] = roots[t];
      for (int32_t step = 0; step < depths[t]; step++) {
        for (int k = 0; k < block; k++) {
          const node_t *node = &nodes[at[k]];
          const double v = rowx[(int64_t)k * features + node->feature];
          const int left = (v <= node->threshold) | ((v != v) & node->missing_left);
          at[k] = left ? node->left : node->right;
        }
      }
      for (int k = 0; k < block; k++) sum[k] += values[at[k]];
    }
    for (int k = 0; k < block; k++) out[first + k] = sum[k];
  }
}
