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

/**
 * Decoded 8-bit RGB pixels, the hand-off from io/decode.ts to preprocess/, metrics/ (MS-SSIM) and
 * robustness/. Declared here with the other seam types rather than in io/decode.ts so that
 * io/bmp.ts and the metrics can name it without importing the decoder (no io/decode.ts <->
 * io/bmp.ts circle; "metrics take matrices, never paths", DESIGN.md).
 */
export interface RgbImage {
  width: number;
  height: number;
  /** HWC, RGB, 8-bit, length width * height * 3. */
  data: Uint8Array;
}
