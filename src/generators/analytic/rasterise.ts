/**
 * A tiny anti-aliased rasteriser for the analytic classes' prototype pictures: one flat-coloured
 * shape over a background with a gentle vertical gradient, values in [-1, 1], HWC RGB.
 *
 * Each shape is a signed distance function (negative inside, in pixels); a pixel's coverage is
 * clamp(0.5 - distance, 0, 1), the area of a unit pixel inside a straight edge at that distance
 * (exact for a box filter across an edge far from corners). The coverage is piecewise linear in
 * the shape's parameters, so finite differences of it are well defined; the class catalogue uses
 * them as covariance directions.
 */

export type ShapeKind = "circle" | "square" | "triangle" | "ring" | "cross";

export interface ShapeParams {
  /** Centre, in pixels (pixel i covers [i, i + 1)). */
  cx: number;
  cy: number;
  /** Outer radius (circle, ring), half side (square), inradius / 0.6 (triangle), half arm length (cross), in pixels. */
  size: number;
  /** Rotation in radians (no effect on circle and ring). */
  angle: number;
  /** Shape colour, RGB in [-1, 1]. */
  colour: readonly [number, number, number];
  /** Background colour at mid height, RGB in [-1, 1]. */
  background: readonly [number, number, number];
}

/** How much the background brightens from top to bottom (a hint of lighting, so the background is not flat). */
const BACKGROUND_GRADIENT = 0.15;

/** The picture as a d = res * res * 3 vector, HWC. */
export function renderShape(kind: ShapeKind, p: ShapeParams, res: number): Float64Array {
  const out = new Float64Array(res * res * 3);
  const cos = Math.cos(p.angle);
  const sin = Math.sin(p.angle);
  for (let y = 0; y < res; y++) {
    const shade = BACKGROUND_GRADIENT * ((y + 0.5) / res - 0.5);
    for (let x = 0; x < res; x++) {
      // pixel centre in the shape's rotated frame
      const dx = x + 0.5 - p.cx;
      const dy = y + 0.5 - p.cy;
      const u = cos * dx + sin * dy;
      const v = -sin * dx + cos * dy;
      const cover = Math.min(1, Math.max(0, 0.5 - signedDistance(kind, u, v, p.size)));
      const o = (y * res + x) * 3;
      for (let ch = 0; ch < 3; ch++) out[o + ch] = (1 - cover) * (p.background[ch] + shade) + cover * p.colour[ch];
    }
  }
  return out;
}

/** The coverage mask alone (1 inside the shape): one value per pixel, row-major. */
export function shapeCoverage(kind: ShapeKind, p: ShapeParams, res: number): Float64Array {
  const out = new Float64Array(res * res);
  const cos = Math.cos(p.angle);
  const sin = Math.sin(p.angle);
  for (let y = 0; y < res; y++) {
    for (let x = 0; x < res; x++) {
      const dx = x + 0.5 - p.cx;
      const dy = y + 0.5 - p.cy;
      out[y * res + x] = Math.min(1, Math.max(0, 0.5 - signedDistance(kind, cos * dx + sin * dy, -sin * dx + cos * dy, p.size)));
    }
  }
  return out;
}

function signedDistance(kind: ShapeKind, u: number, v: number, size: number): number {
  switch (kind) {
    case "circle":
      return Math.hypot(u, v) - size;
    case "ring":
      return Math.abs(Math.hypot(u, v) - size * 0.75) - size * 0.25;
    case "square":
      return boxDistance(u, v, size, size);
    case "cross":
      return Math.min(boxDistance(u, v, size, size * 0.3), boxDistance(u, v, size * 0.3, size));
    case "triangle":
      return triangleDistance(u, v, size * 0.6);
  }
}

/** Exact distance to an axis-aligned box of half extents (hx, hy) (Inigo Quilez's box SDF formula). */
function boxDistance(u: number, v: number, hx: number, hy: number): number {
  const qx = Math.abs(u) - hx;
  const qy = Math.abs(v) - hy;
  return Math.hypot(Math.max(qx, 0), Math.max(qy, 0)) + Math.min(Math.max(qx, qy), 0);
}

/** Equilateral triangle (apex up) with inradius `inradius`: the largest of its three edge half-plane distances (exact inside and beside edges, slightly short near corners). */
function triangleDistance(u: number, v: number, inradius: number): number {
  let d = -Infinity;
  for (let k = 0; k < 3; k++) {
    // outward normals at 90, 210 and 330 degrees (y grows downwards, so "up" is -y)
    const theta = Math.PI / 2 + (2 * Math.PI * k) / 3;
    d = Math.max(d, Math.cos(theta) * u - Math.sin(theta) * v - inradius);
  }
  return d;
}
