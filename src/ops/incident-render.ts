/** The incident report (markdown) and the terminal summary of `ups incident` (pure). */
import type {IncidentResult} from './incident.js'

const STOP_TEXT = {
  stopped: 'stopped by ups incident (not destroyed: the disk and its files are kept)',
  'already-stopped': 'was already stopped (not touched)',
  gone: 'no longer exists (destroyed before the incident)',
  failed: 'NOT stopped: the stop call failed',
}

export function renderIncidentReport(r: IncidentResult): string {
  const s = r.state
  const c = r.classification
  const L = [`# Incident: instance ${r.instanceId}`, '']
  L.push('| | |', '|---|---|')
  L.push(`| Instance | ${r.instanceId} |`, `| Run | ${r.runId ?? '-'} |`, `| Status when opened | ${s.status_before ?? 'unknown'} |`)
  L.push(`| Opened | ${s.opened_at} |`, `| Updated | ${s.updated_at} (run ${s.invocations} time(s)) |`, '')
  L.push('## Root cause', '', `**${c.title}.**`, '', `Action: ${c.action}`, '')
  if (c.batchSize !== undefined) L.push(`Batch size in use: ${c.batchSize}.`, '')
  if (c.evidence.length) {
    L.push('Evidence (instance.log):', '', '```')
    for (const e of c.evidence) L.push(`${String(e.line).padStart(6)}: ${e.text}`)
    L.push('```', '')
  }
  if (c.traceback) {
    L.push(`Traceback (${c.traceback.language}, from line ${c.traceback.startLine}), the frames that matter, innermost last:`, '', '```')
    for (const f of c.traceback.frames) L.push(`${f.file}:${f.line}${f.function ? ` in ${f.function}` : ''}${f.code ? `\n    ${f.code}` : ''}`)
    L.push(c.traceback.exception, '```', '')
  }
  L.push('## Evidence preserved', '')
  L.push(s.log.saved ? `- Log: instance.log (${s.log.lines} lines, ${s.log.bytes} bytes, saved ${s.log.at})` : `- Log: not saved${s.log.error ? ` (${s.log.error})` : ''}`)
  if (s.log.saved && s.log.error) L.push(`  - the latest refresh failed: ${s.log.error}`)
  const ck = s.checkpoints
  L.push(
    ck.status === 'copied'
      ? `- Checkpoints: copied to checkpoints/ (${ck.files} file(s) from ${ck.remote_path})`
      : `- Checkpoints: ${ck.status === 'impossible' ? 'could not be copied' : 'copy failed'}: ${ck.reason}${ck.remote_path ? ` (from ${ck.remote_path})` : ''}`,
  )
  L.push('', '## Actions', '', `- Instance ${STOP_TEXT[s.stop.status]}${s.stop.error ? `: ${s.stop.error}` : ''} (${s.stop.at}).`, '')
  L.push('## Next steps', '')
  L.push(`1. ${c.action}`)
  if (r.runId) L.push(`2. Analyze the run: \`ups analyze ${r.runId}\`.`)
  L.push(`${r.runId ? 3 : 2}. When fixed, relaunch or resume; destroy the stopped instance once nothing more is needed from it (\`ups instances destroy ${r.instanceId}\`).`)
  L.push('')
  return L.join('\n')
}

export function renderIncidentSummary(r: IncidentResult): string {
  const s = r.state
  return [
    `Incident folder: ${r.folder}${r.reused ? ' (updated)' : ''}`,
    `Root cause: ${r.classification.title}`,
    `Action: ${r.classification.action}`,
    `Log: ${s.log.saved ? `${s.log.lines} lines saved` : `not saved${s.log.error ? ` (${s.log.error})` : ''}`}`,
    `Checkpoints: ${s.checkpoints.status === 'copied' ? `${s.checkpoints.files} file(s) copied` : `${s.checkpoints.status}: ${s.checkpoints.reason}`}`,
    `Instance: ${STOP_TEXT[s.stop.status]}`,
    `Report: ${r.files.report}`,
  ].join('\n')
}
