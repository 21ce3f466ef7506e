/**
 * 1D viscous Burgers u_t + (u^2/2)_x = nu u_xx, periodic on [0, 1).
 * Conservative finite volume: MUSCL reconstruction with the minmod limiter, Rusanov flux for
 * the convective part, central differences for the diffusive flux, SSP-RK2 in time. The step is
 * CFL-limited by both convection (dx / max|u|) and diffusion (dx^2 / 2 nu), and shortened to land
 * exactly on every requested output time. Every update is a flux difference, so the total mass
 * changes only by rounding.
 */
export interface BurgersOptions {
  nu: number
  /** Output times, non-decreasing, starting at or after 0. */
  times: ArrayLike<number>
  /** Safety factor on the stable step (default 0.4). */
  cfl?: number
}

export interface BurgersStats {
  steps: number
}

function minmod(a: number, b: number): number {
  if (a * b <= 0) return 0
  return Math.abs(a) < Math.abs(b) ? a : b
}

/**
 * du/dt for the semi-discrete scheme, written into `rhs`. Scratch: `g` holds u with two ghost
 * cells each side (periodic), `slope` and `flux` (flux[i] is at the face left of cell i).
 * Returns the largest wave speed seen, for the CFL limit.
 */
function burgersRhs(u: Float64Array, nu: number, dx: number, rhs: Float64Array, g: Float64Array, slope: Float64Array, flux: Float64Array): number {
  const n = u.length
  g.set(u, 2)
  g[0] = u[n - 2]
  g[1] = u[n - 1]
  g[n + 2] = u[0]
  g[n + 3] = u[1]
  // slope[k] belongs to g[k], for k = 1 .. n+2
  for (let k = 1; k <= n + 2; k++) slope[k] = minmod(g[k] - g[k - 1], g[k + 1] - g[k])
  const invDx = 1 / dx
  let amax = 0
  // face between g[k] and g[k+1] for k = 1 .. n+1 -> flux[k - 1] is the face left of cell k-1
  for (let k = 1; k <= n + 1; k++) {
    const uL = g[k] + 0.5 * slope[k]
    const uR = g[k + 1] - 0.5 * slope[k + 1]
    const a = Math.max(Math.abs(uL), Math.abs(uR))
    if (a > amax) amax = a
    flux[k - 1] = 0.25 * (uL * uL + uR * uR) - 0.5 * a * (uR - uL) - nu * (g[k + 1] - g[k]) * invDx
  }
  for (let i = 0; i < n; i++) rhs[i] = -(flux[i + 1] - flux[i]) * invDx
  return amax
}

/**
 * Evolves cell averages `u0` and returns frames [T, X] at `options.times`.
 * Pure: no IO, no clock, deterministic.
 */
export function solveBurgers(u0: Float64Array, options: BurgersOptions, stats?: BurgersStats): Float64Array {
  const {nu, times} = options
  const cfl = options.cfl ?? 0.4
  const n = u0.length
  if (n < 3) throw new RangeError('Burgers needs at least 3 cells')
  if (!(nu >= 0)) throw new RangeError(`nu must be >= 0 (got ${nu})`)
  const dx = 1 / n
  const out = new Float64Array(times.length * n)
  const u = Float64Array.from(u0)
  const u1 = new Float64Array(n)
  const k1 = new Float64Array(n)
  const k2 = new Float64Array(n)
  const g = new Float64Array(n + 4)
  const slope = new Float64Array(n + 4)
  const flux = new Float64Array(n + 1)
  const dtDiffusion = nu > 0 ? (dx * dx) / (2 * nu) : Infinity
  let t = 0
  let steps = 0
  for (let f = 0; f < times.length; f++) {
    const target = times[f]
    if (target < t - 1e-12) throw new RangeError(`output times must be non-decreasing (got ${target} after ${t})`)
    while (t < target - 1e-14) {
      // Stage 1 also gives the wave speed for this step's CFL limit.
      const amax = burgersRhs(u, nu, dx, k1, g, slope, flux)
      let dt = cfl * Math.min(amax > 0 ? dx / amax : Infinity, dtDiffusion)
      if (!Number.isFinite(dt)) dt = target - t
      if (t + dt > target) dt = target - t
      for (let i = 0; i < n; i++) u1[i] = u[i] + dt * k1[i]
      burgersRhs(u1, nu, dx, k2, g, slope, flux)
      for (let i = 0; i < n; i++) u[i] = 0.5 * u[i] + 0.5 * (u1[i] + dt * k2[i])
      t += dt
      steps++
    }
    out.set(u, f * n)
  }
  if (stats) stats.steps = steps
  return out
}
