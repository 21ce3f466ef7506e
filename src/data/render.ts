/** Pure text renderers for the data commands. */
import {basename} from 'node:path'

import {formatRanges} from './split.js'
import {CHECK_IDS, type CheckStatus, type ValidateResult} from './validate.js'

const MARK: Record<CheckStatus, string> = {ok: '✓', fail: '✗', skip: '-'}
const HEAD: Record<string, string> = {exists: 'exists', hdf5: 'hdf5', layout: 'layout', dtype: 'dtype', coordinates: 'coords', values: 'values', manifest: 'manifest', disjoint: 'disjoint'}

export function renderValidate(result: ValidateResult): string {
  const names = result.files.map((f) => basename(f.path))
  const w = Math.max(4, ...names.map((n) => n.length))
  const cols = CHECK_IDS.map((id) => HEAD[id])
  const lines = [`${'file'.padEnd(w)}  ${'split'.padEnd(5)}  ${cols.join('  ')}`]
  result.files.forEach((f, i) => {
    const cells = CHECK_IDS.map((id, j) => MARK[f.checks.find((c) => c.id === id)?.status ?? 'skip'].padEnd(cols[j].length))
    lines.push(`${names[i].padEnd(w)}  ${f.split.padEnd(5)}  ${cells.join('  ')}`)
  })
  lines.push('')
  // A raw PDEBench file split by sample index: say which samples each split got.
  const rawFiles = [...new Set(result.files.filter((f) => f.rawSplit).map((f) => f.path))]
  for (const path of rawFiles) {
    const parts = result.files.filter((f) => f.path === path && f.rawSplit)
    const first = parts[0].rawSplit!
    lines.push(`${basename(path)}: ${first.total} samples split by index (${first.method}): ${parts.map((f) => `${f.split} ${f.numSamples} ${formatRanges(f.rawSplit!.ranges, 2)}`).join(', ')}`)
  }
  if (rawFiles.length > 0) lines.push('')
  const failed = result.files.filter((f) => !f.ok)
  if (failed.length === 0) {
    const scanned = result.files.reduce((a, f) => a + f.samplesScanned, 0)
    lines.push(`✅ Data is valid (${result.files.length} file(s), ${scanned} samples scanned${result.quick ? ', --quick: 10% of samples' : ''})`)
    return lines.join('\n')
  }
  for (const f of failed) {
    for (const c of f.checks.filter((c) => c.status === 'fail')) lines.push(`✗ ${f.path}: ${c.id}: ${c.detail}`)
    if (f.quarantinedTo) lines.push(`  moved to ${f.quarantinedTo} (reason in ${f.quarantinedTo}.reason.json)`)
    if (f.refetch) lines.push(`  re-fetch: ${f.refetch}`)
    if (f.hint) lines.push(`  hint: ${f.hint}`)
  }
  lines.push('', `❌ Data is invalid: ${failed.length} of ${result.files.length} file(s) failed`)
  return lines.join('\n')
}
