/**
 * The value scan behind `ups data validate`: NaN/Inf, |value| > 1e10 and constant samples,
 * streamed in budget-sized reads. `quick` looks at every 10th sample (10%, at least one).
 */
import type {Dataset} from './pdebench.js'

export const HUGE_VALUE = 1e10
const MAX_LISTED = 5

export interface ScanResult {
  samplesScanned: number
  problems: string[]
  min: number
  max: number
}

export function scanValues(ds: Dataset, options: {quick: boolean; budgetBytes: number}): ScanResult {
  const sampleSize = ds.sampleShape.reduce((p, v) => p * v, 1)
  const perRead = Math.max(1, Math.floor(options.budgetBytes / (sampleSize * 4)))
  const bad = {nan: [] as number[], inf: [] as number[], huge: [] as number[], constant: [] as number[]}
  const counts = {nan: 0, inf: 0, huge: 0, constant: 0}
  let min = Infinity
  let max = -Infinity
  let scanned = 0
  const note = (kind: keyof typeof bad, sample: number) => {
    counts[kind]++
    if (bad[kind].length < MAX_LISTED) bad[kind].push(sample)
  }
  const check = (data: Float32Array, first: number) => {
    const n = data.length / sampleSize
    for (let s = 0; s < n; s++) {
      let nan = false
      let inf = false
      let huge = false
      let lo = Infinity
      let hi = -Infinity
      for (let j = s * sampleSize, end = j + sampleSize; j < end; j++) {
        const v = data[j]
        if (v !== v) nan = true
        else if (v === Infinity || v === -Infinity) inf = true
        else {
          if (v < lo) lo = v
          if (v > hi) hi = v
          if (v > HUGE_VALUE || v < -HUGE_VALUE) huge = true
        }
      }
      const index = first + s
      if (nan) note('nan', index)
      if (inf) note('inf', index)
      if (huge) note('huge', index)
      if (!nan && !inf && lo === hi) note('constant', index)
      if (lo < min) min = lo
      if (hi > max) max = hi
      scanned++
    }
  }
  if (options.quick) {
    for (let i = 0; i < ds.numSamples; i += 10) check(ds.readSamples(i, i + 1).data, i)
  } else {
    for (let a = 0; a < ds.numSamples; a += perRead) {
      const b = Math.min(ds.numSamples, a + perRead)
      check(ds.readSamples(a, b).data, a)
    }
  }
  const problems: string[] = []
  const list = (kind: keyof typeof bad, what: string) => {
    if (counts[kind] === 0) return
    const more = counts[kind] > bad[kind].length ? ', ...' : ''
    problems.push(`${counts[kind]} sample(s) ${what} (sample ${bad[kind].join(', ')}${more})`)
  }
  list('nan', 'contain NaN')
  list('inf', 'contain Inf')
  list('huge', `have |value| > ${HUGE_VALUE.toExponential(0)}`)
  list('constant', 'are constant')
  return {samplesScanned: scanned, problems, min, max}
}
