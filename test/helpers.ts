/** Shared test helpers: temp folders that clean up, and the built CLI run as a user would. */
import {spawn} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {mkdtemp, rm, writeFile, mkdir} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import type {TestContext} from 'node:test'

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
export const CLI = join(REPO_ROOT, 'bin', 'run.js')

/** A temp folder removed when the test ends. */
export async function tempDir(t: TestContext, prefix = 'ups-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.after(() => rm(dir, {recursive: true, force: true}))
  return dir
}

/** Writes files given as {relativePath: content} under dir. */
export async function writeFiles(dir: string, files: Record<string, string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const path = join(dir, rel)
    await mkdir(dirname(path), {recursive: true})
    await writeFile(path, content)
  }
}

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

let upsHome: string | undefined

/**
 * $UPS_HOME for CLI runs that set none: one temp folder per test process (removed at exit), so
 * launch records and caches never land in the real home, and runs of one test file share caches.
 */
function testUpsHome(): string {
  if (!upsHome) {
    const dir = mkdtempSync(join(tmpdir(), 'ups-home-'))
    process.on('exit', () => rmSync(dir, {recursive: true, force: true}))
    upsHome = dir
  }
  return upsHome
}

/** Runs `bin/run.js ARGS` (build first: `npm test` does) and collects its output. */
export function runCli(args: string[], options: {cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number} = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: {...process.env, UPS_HOME: process.env.UPS_HOME ?? testUpsHome(), NO_COLOR: '1', FORCE_COLOR: '0', ...options.env},
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000)
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolvePromise({code: code ?? -1, stdout, stderr})
    })
    child.stdin.end(options.input ?? '')
  })
}

/** True when output looks like a stack trace (what users must never see without --verbose). */
export function hasStackTrace(text: string): boolean {
  return /\n\s+at .+\(.*:\d+:\d+\)|\n\s+at .+:\d+:\d+/.test(text)
}
