// What a guest receives at launch through EC2 UserData (base64). EC2 has no file injection and
// no way to set a password later (reference §1: inject_file, set_admin_password), so spawn's
// injected files and admin password travel to cloud-init, together with the producer's own user
// data, as a MIME multipart archive cloud-init unpacks:
//   part 1  text/cloud-config: write_files (the injected files, still base64) and chpasswd
//   part 2  the producer's user data, with the content type its first line announces.
// Without files or password the producer's user data is passed through unchanged.
//
// The result is a secret: it is handed to RunInstances only, never logged, tagged or stored.

/** EC2's limit on UserData before base64 encoding. */
export const MAX_EC2_USER_DATA_BYTES = 16 * 1024;

export interface UserDataInput {
  /** base64, as the command carries it. */
  userData: string | null;
  injectedFiles: readonly { path: string; contents: string }[];
  adminPassword: string | null;
}

/** cloud-init's content type for user data, from its first line (its "include" headers). */
function contentTypeOf(text: string): string {
  if (text.startsWith('#cloud-config')) return 'text/cloud-config';
  if (text.startsWith('#include')) return 'text/x-include-url';
  if (text.startsWith('#cloud-boothook')) return 'text/cloud-boothook';
  if (text.startsWith('Content-Type: multipart/')) return 'multipart/mixed';
  return 'text/x-shellscript';
}

/**
 * The cloud-config part. cloud-config is YAML and JSON is YAML, so the document is written as
 * JSON: no hand-rolled YAML quoting for paths or passwords.
 */
function cloudConfig(input: UserDataInput): string {
  const config: Record<string, unknown> = {};
  if (input.injectedFiles.length > 0) {
    config['write_files'] = input.injectedFiles.map((file) => ({
      path: file.path,
      encoding: 'b64',
      content: file.contents,
      permissions: '0644',
    }));
  }
  if (input.adminPassword !== null && input.adminPassword !== '') {
    // Nova's admin_pass is the password of the image's default user (root on Linux images).
    config['chpasswd'] = {
      expire: false,
      users: [{ name: 'root', password: input.adminPassword, type: 'text' }],
    };
  }
  return `#cloud-config\n${JSON.stringify(config)}\n`;
}

/** The UserData (base64) for RunInstances, or undefined when the guest gets none. */
export function buildUserData(input: UserDataInput): string | undefined {
  const hasConfig =
    input.injectedFiles.length > 0 || (input.adminPassword !== null && input.adminPassword !== '');
  const own = input.userData === null || input.userData === '' ? null : input.userData;
  if (!hasConfig) return own ?? undefined;

  const parts = [{ type: 'text/cloud-config', body: cloudConfig(input) }];
  if (own !== null) {
    const text = Buffer.from(own, 'base64').toString('utf8');
    parts.push({ type: contentTypeOf(text), body: text });
  }
  const boundary = `==STRATUS-${Date.now().toString(36)}==`;
  const body = [
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    'MIME-Version: 1.0',
    '',
    ...parts.flatMap((part) => [
      `--${boundary}`,
      `Content-Type: ${part.type}; charset="utf-8"`,
      'MIME-Version: 1.0',
      'Content-Transfer-Encoding: 7bit',
      '',
      part.body,
    ]),
    `--${boundary}--`,
    '',
  ].join('\n');
  return Buffer.from(body, 'utf8').toString('base64');
}

/** Whether the encoded user data fits EC2's limit (checked before RunInstances). */
export function fitsEc2Limit(base64: string | undefined): boolean {
  return base64 === undefined || Buffer.from(base64, 'base64').length <= MAX_EC2_USER_DATA_BYTES;
}
