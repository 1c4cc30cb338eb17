/** Row-major n x d feature matrix (one row per image). */
export interface FeatureMatrix {
  n: number;
  d: number;
  data: Float32Array;
}

/** A Gaussian fitted to features: mean and covariance (ddof = 1, like np.cov), float64. */
export interface Gaussian {
  n: number;
  mu: Float64Array;
  /** d x d, row-major. */
  sigma: Float64Array;
}
