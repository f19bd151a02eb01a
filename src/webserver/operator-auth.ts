import { createHash, timingSafeEqual } from 'node:crypto';
import { TLSSocket } from 'node:tls';
import type { NextFunction, Request, Response } from 'express';

/** Hex SHA-256 of a certificate's DER SubjectPublicKeyInfo: CNPG's `certs.PublicKeyFingerprint`. */
export function publicKeyFingerprint(spkiDer: Buffer): string {
  return createHash('sha256').update(spkiDer).digest('hex');
}

/**
 * CNPG's `withOperatorAuth`: the operator's client certificate is pinned by the fingerprint it publishes in
 * `status.operatorCertificateFingerprint`; there is no CA check. 401 without TLS or without a certificate (permanent);
 * 503 while nothing is registered or the certificate is another one (transient: the operator may be rotating).
 */
export function requireOperator(expectedFingerprint: () => string | undefined) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const socket = req.socket;
    const peer = socket instanceof TLSSocket ? socket.getPeerX509Certificate() : undefined;
    if (!peer) {
      res.status(401).type('text/plain').send('client certificate required\n');
      return;
    }
    const expected = expectedFingerprint();
    if (expected === undefined || expected === '') {
      res.status(503).type('text/plain').send('operator certificate not registered\n');
      return;
    }
    const actual = Buffer.from(publicKeyFingerprint(peer.publicKey.export({ type: 'spki', format: 'der' })));
    const wanted = Buffer.from(expected.toLowerCase());
    if (actual.length !== wanted.length || !timingSafeEqual(actual, wanted)) {
      res.status(503).type('text/plain').send('operator certificate not recognized\n');
      return;
    }
    next();
  };
}
