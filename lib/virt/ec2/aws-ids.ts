// Whether a name given by Nova is already an EC2 id (subnet-…, sg-…, eni-…, vol-…), which the
// driver then uses as is instead of looking it up in the settings' mappings.

export function isAwsId(prefix: string, value: string | undefined): value is string {
  return value !== undefined && new RegExp(`^${prefix}-[0-9a-zA-Z]+$`).test(value);
}
