/** Pure text renderers for the data commands. */
import {basename} from 'node:path'

import {CHECK_IDS, type CheckStatus, type ValidateResult} from './validate.js'

const MARK: Record<CheckStatus, string> = {ok: '✓', fail: '✗', skip: '-'}
const HEAD: Record<string, string> = {exists: 'exists', hdf5: 'hdf5', layout: 'layout', dtype: 'dtype', coordinates: 'coords', values: 'values', manifest: 'manifest'}

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
  }
  lines.push('', `❌ Data is invalid: ${failed.length} of ${result.files.length} file(s) failed`)
  return lines.join('\n')
}
