/** Concurrent leaderboard writers (separate processes) queue on its lock: no row is lost. */
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {readdir, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {it} from 'node:test'

import {readLeaderboard} from '../../../src/pipeline/leaderboard.js'
import {REPO_ROOT, tempDir} from '../../helpers.js'

const CHILD = join(REPO_ROOT, 'test', 'fixtures', 'lock-child.ts')

async function tenWriters(csv: string): Promise<void> {
  const children = Array.from({length: 10}, (_, n) => spawn(process.execPath, ['--import', 'tsx', CHILD, 'leaderboard', csv, String(n)], {cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'inherit']}))
  const said = (child: (typeof children)[number], word: string) => new Promise<void>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => (out += d) && out.includes(word) && resolve())
    child.on('exit', (code) => (out.includes(word) ? resolve() : reject(new Error(`child exited ${code} before "${word}"`))))
  })
  const exits = children.map((c) => new Promise<number | null>((r) => c.on('exit', r)))
  await Promise.all(children.map((c) => said(c, 'ready')))
  for (const c of children) c.stdin.end('go\n')
  assert.deepEqual(await Promise.all(exits), Array(10).fill(0))
}

it('10 processes each add a row at the same moment: all 10 rows are there', {timeout: 120_000}, async (t) => {
  const dir = await tempDir(t)
  const csv = join(dir, 'leaderboard.csv')
  await tenWriters(csv)
  const board = await readLeaderboard(csv)
  assert.deepEqual(board.rows.map((r) => r.run_id).sort(), Array.from({length: 10}, (_, n) => `run_${n}`))
  assert.deepEqual(await readdir(dir), ['leaderboard.csv'], 'no lock or temp file is left behind')
})

it('a stale lock left by a killed writer: the 10 writers reclaim it one at a time and still keep every row', {timeout: 120_000}, async (t) => {
  const dir = await tempDir(t)
  const csv = join(dir, 'leaderboard.csv')
  const dead = spawn(process.execPath, ['-e', ''], {stdio: 'ignore'})
  await new Promise((r) => dead.on('exit', r))
  await writeFile(`${csv}.lock`, JSON.stringify({pid: dead.pid, hostname: hostname(), started_at: '2026-01-01T00:00:00.000Z', command: 'ups run (killed)'}))
  await tenWriters(csv)
  const board = await readLeaderboard(csv)
  assert.deepEqual(board.rows.map((r) => r.run_id).sort(), Array.from({length: 10}, (_, n) => `run_${n}`))
  assert.deepEqual(await readdir(dir), ['leaderboard.csv'])
})
