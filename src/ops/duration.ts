/** Durations as people write them in flags: `7d`, `12h`, `30m`, `2w`, `90s`, `500ms`; a bare number is in `defaultUnit` (days unless said). */
import {ExitCode, UserError} from '../util/errors.js'

const UNIT_MS: Record<string, number> = {ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000}

export type DurationUnit = 'ms' | 's' | 'm' | 'h' | 'd' | 'w'

export function parseDuration(text: string, flag: string, defaultUnit: DurationUnit = 'd'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|[smhdw]?)\s*$/i.exec(text)
  if (!m) {
    throw new UserError(`--${flag} "${text}" is not a duration.`, {
      code: 'OPS_BAD_DURATION',
      hint: `Write a number and a unit: 90s, 30m, 12h, 7d, 2w (a bare number is in ${defaultUnit}).`,
      exitCode: ExitCode.USAGE,
    })
  }
  return Math.round(Number(m[1]) * UNIT_MS[(m[2] || defaultUnit).toLowerCase()])
}

export function formatAge(ms: number): string {
  const d = ms / 86_400_000
  if (d >= 1) return `${d.toFixed(1)} d`
  const h = ms / 3_600_000
  return h >= 1 ? `${h.toFixed(1)} h` : `${Math.max(0, Math.round(ms / 60_000))} min`
}
