/**
 * Keys printed in an instance's log never reach what ups writes or shows: incident files (0600),
 * saved logs and notes, the monitor report. The provider here is a bare fake (no redaction of its
 * own), so these check the ops layer itself; test/e2e/secrets.test.ts checks the whole CLI.
 */
import assert from 'node:assert/strict'
import {readFile, readdir, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {test} from 'node:test'

import {monitorInstance, openIncident} from '../../../src/ops/index.js'
import {saveInstanceLogs, writeIncidentNote} from '../../../src/ops/preserve.js'
import {UserError} from '../../../src/util/errors.js'
import type {Instance, Provider} from '../../../src/vast/index.js'
import {tempDir} from '../../helpers.js'
import {OOM_LOG} from './logs.js'

const WANDB = '0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c'
const VAST = 'c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789'
const SHA = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'
const LOCAL = 'only-in-local-env-value-42'
export const SECRET_LOG = [
  'ups: onstart',
  `WANDB_API_KEY=${WANDB}`,
  `VAST_API_KEY=${VAST}`,
  `HF_TOKEN=${LOCAL}`,
  'operator epoch 1/25 loss=nan grad_norm=inf',
  `checkpoint sha256=${SHA}`,
  'Training pipeline failed: non-finite loss at step 3',
].join('\n')

function fakeProvider(log: string): Provider {
  const instance = {id: 7, status: 'running', intendedStatus: 'running'} as unknown as Instance
  return {
    name: 'fake',
    search: async () => [],
    create: async () => ({id: 7}),
    show: async () => instance,
    list: async () => [instance],
    stop: async () => {},
    start: async () => {},
    destroy: async () => {},
    logs: async () => log.split('\n'),
    sshUrl: async () => 'ssh://root@host:22',
  }
}

const leaks = (text: string) => [WANDB, VAST, LOCAL].filter((s) => text.includes(s))

test('ups incident: every file redacted and owner-only, the sha256 kept', async (t) => {
  const root = await tempDir(t, 'ups-incident-secrets-')
  const env = {HF_TOKEN: LOCAL}
  const r = await openIncident(
    {instanceId: 7, incidentsRoot: join(root, 'incidents'), runsRoot: join(root, 'runs')},
    {provider: fakeProvider(SECRET_LOG + '\n' + OOM_LOG), copyCheckpoints: async () => ({ok: false, reason: `scp failed with WANDB_API_KEY=${WANDB}`}), now: () => new Date('2025-03-01T12:00:00Z'), env},
  )
  assert.equal(r.classification.cause, 'oom')
  const names = await readdir(r.folder)
  assert.deepEqual(names.sort(), ['classification.json', 'incident.json', 'instance.log', 'report.md'])
  for (const name of names) {
    const path = join(r.folder, name)
    assert.deepEqual(leaks(await readFile(path, 'utf8')), [], name)
    assert.equal((await stat(path)).mode & 0o777, 0o600, name)
  }
  assert.equal((await stat(r.folder)).mode & 0o777, 0o700)
  const log = await readFile(r.files.log, 'utf8')
  assert.match(log, /WANDB_API_KEY=\[REDACTED\]\nVAST_API_KEY=\[REDACTED\]\nHF_TOKEN=\[REDACTED(:HF_TOKEN)?\]/)
  assert.ok(log.includes(`sha256=${SHA}`))
  assert.deepEqual(leaks(JSON.stringify(r)), [])

  // A log kept from before redaction existed is cleaned when the refresh fails.
  await writeFile(r.files.log, SECRET_LOG)
  const failing = {...fakeProvider(''), logs: async () => Promise.reject(new UserError('vastai logs timed out'))}
  await openIncident({instanceId: 7, incidentsRoot: join(root, 'incidents'), runsRoot: join(root, 'runs')}, {provider: failing, copyCheckpoints: async () => ({ok: true, files: 0}), now: () => new Date('2025-03-01T12:05:00Z'), env})
  assert.deepEqual(leaks(await readFile(r.files.log, 'utf8')), [])
})

test('preserve: saved logs and incident notes are redacted and owner-only', async (t) => {
  const dir = join(await tempDir(t, 'ups-preserve-secrets-'), 'incidents', 'x')
  const saved = await saveInstanceLogs(fakeProvider(SECRET_LOG), 7, {dir, env: {}})
  const note = await writeIncidentNote(dir, {reason: `log said VAST_API_KEY: ${VAST}`})
  for (const path of [saved.logPath!, note]) {
    assert.deepEqual(leaks(await readFile(path, 'utf8')).filter((s) => s !== LOCAL), [], path)
    assert.equal((await stat(path)).mode & 0o777, 0o600, path)
  }
  assert.ok((await readFile(saved.logPath!, 'utf8')).includes(SHA))
})

test('ups monitor: the lines it quotes from the log carry no key', async (t) => {
  const root = await tempDir(t, 'ups-monitor-secrets-')
  const log = SECRET_LOG.replace('loss=nan', `loss=nan WANDB_API_KEY=${WANDB}`) + `\nTraining pipeline failed (VAST_API_KEY=${VAST})`
  const report = await monitorInstance({instanceId: 7}, {provider: fakeProvider(log), launchesFile: join(root, 'launches.jsonl'), now: () => new Date(), loadMonitorSettings: async () => undefined, env: {}})
  assert.ok(report.log.nanLines.length > 0 && report.log.failureLines.length > 0)
  assert.deepEqual(leaks(JSON.stringify(report)).filter((s) => s !== LOCAL), [])
})
