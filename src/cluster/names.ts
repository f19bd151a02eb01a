/** RFC 1123 label (lowercase alphanumerics and `-`, alphanumeric at both ends); no nested quantifiers. */
export function isDnsLabel(s: string): boolean {
  return /^[a-z0-9-]+$/.test(s) && !s.startsWith('-') && !s.endsWith('-');
}

/** A Kubernetes object name (RFC 1123 subdomain). */
export function isObjectName(s: string): boolean {
  return s.length <= 253 && /^[a-z0-9.-]+$/.test(s) && /^[a-z0-9]/.test(s) && /[a-z0-9]$/.test(s);
}
