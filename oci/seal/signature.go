package seal

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/smallstep/pkcs7"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
)

// MaxSignatureSize bounds a signature blob or annotation read from an
// image (a PKCS#7 signature with a certificate chain is a few KiB).
const MaxSignatureSize = 64 << 10

// formattedDigestMagic starts the kernel's struct fsverity_formatted_digest.
const formattedDigestMagic = "FSVerity"

// FormattedDigest returns what an fs-verity builtin signature signs, the
// kernel's struct fsverity_formatted_digest for d (the specification's
// "Signature Format"): the magic "FSVerity", the le16 hash algorithm
// number (FS_VERITY_HASH_ALG_*), the le16 digest size, the digest.
func FormattedDigest(d digest.Digest) []byte {
	b := make([]byte, 0, 12+d.Size())
	b = append(b, formattedDigestMagic...)
	b = binary.LittleEndian.AppendUint16(b, uint16(d.Algorithm()))
	b = binary.LittleEndian.AppendUint16(b, uint16(d.Size()))
	return d.AppendBytes(b)
}

// Signer makes fs-verity builtin signatures: a detached PKCS#7 signature,
// DER encoded, over FormattedDigest(d), which FS_IOC_ENABLE_VERITY takes
// as it is. KeySigner signs with a key in memory; an HSM or a signing
// service can implement it too.
type Signer interface {
	Sign(d digest.Digest) ([]byte, error)
}

// KeySigner is a Signer holding a private key and its X.509 certificate.
type KeySigner struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

var _ Signer = (*KeySigner)(nil)

// LoadKeySigner makes a KeySigner of a PEM private key (PKCS#8, PKCS#1 or
// SEC 1) and a PEM certificate, checking that they belong together.
func LoadKeySigner(keyPEM, certPEM []byte) (*KeySigner, error) {
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: the key is not the certificate's (%s)", ErrSignature, cert.Subject)
	}
	return &KeySigner{Cert: cert, Key: key}, nil
}

// ParseCertificate parses a PEM (or DER) X.509 certificate.
func ParseCertificate(data []byte) (*x509.Certificate, error) {
	if b, _ := pem.Decode(data); b != nil {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("seal: PEM block %q is not a CERTIFICATE", b.Type)
		}
		data = b.Bytes
	}
	cert, err := x509.ParseCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("seal: certificate: %w", err)
	}
	return cert, nil
}

func parseKey(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("seal: key: no PEM block")
	}
	var k any
	var err error
	switch b.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("seal: key: PEM block %q is not a private key", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("seal: key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("seal: key: %T cannot sign", k)
	}
	return s, nil
}

// Sign returns the PKCS#7 signature of d, made as the fsverity tool's
// "sign" makes it: the message digest is d's own hash (SHA-256 or
// SHA-512), no signed attributes, detached, the signer identified by
// issuer and serial number. An RSA key's algorithm is written
// rsaEncryption, the identifier the kernel's PKCS#7 parser takes.
func (s *KeySigner) Sign(d digest.Digest) ([]byte, error) {
	sd, err := pkcs7.NewSignedData(FormattedDigest(d))
	if err != nil {
		return nil, fmt.Errorf("seal: signing %s: %w", d, err)
	}
	digestOID, ecdsaOID := pkcs7.OIDDigestAlgorithmSHA256, pkcs7.OIDDigestAlgorithmECDSASHA256
	if d.Algorithm() == fsverity.SHA512 {
		digestOID, ecdsaOID = pkcs7.OIDDigestAlgorithmSHA512, pkcs7.OIDDigestAlgorithmECDSASHA512
	}
	sd.SetDigestAlgorithm(digestOID)
	switch s.Key.Public().(type) {
	case *rsa.PublicKey:
		sd.SetEncryptionAlgorithm(pkcs7.OIDEncryptionAlgorithmRSA)
	case *ecdsa.PublicKey:
		sd.SetEncryptionAlgorithm(ecdsaOID)
	}
	if err := sd.SignWithoutAttr(s.Cert, s.Key, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fmt.Errorf("seal: signing %s: %w", d, err)
	}
	sd.Detach()
	der, err := sd.Finish()
	if err != nil {
		return nil, fmt.Errorf("seal: signing %s: %w", d, err)
	}
	return der, nil
}

// VerifySignature checks that sig, a detached PKCS#7 signature (DER), is
// cert's signature of FormattedDigest(d), as the kernel checks it against
// a key of its .fs-verity keyring: one signer, named by cert's issuer and
// serial number, and its signature made with cert's key. Certificates in
// sig are ignored; cert alone is trusted. Errors wrap ErrSignature.
func VerifySignature(sig []byte, d digest.Digest, cert *x509.Certificate) error {
	if cert == nil {
		return fmt.Errorf("%w: no certificate to check it with", ErrSignature)
	}
	if len(sig) > MaxSignatureSize {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrSignature, len(sig), MaxSignatureSize)
	}
	p7, err := pkcs7.Parse(sig)
	if err != nil {
		return fmt.Errorf("%w: not PKCS#7: %w", ErrSignature, err)
	}
	if len(p7.Signers) != 1 {
		return fmt.Errorf("%w: %d signers, want 1", ErrSignature, len(p7.Signers))
	}
	msg := FormattedDigest(d)
	if len(p7.Content) != 0 && !bytes.Equal(p7.Content, msg) {
		return fmt.Errorf("%w: it signs other content than the fs-verity digest %s", ErrSignature, d)
	}
	p7.Content = msg
	p7.Certificates = []*x509.Certificate{cert}
	if err := p7.Verify(); err != nil {
		return fmt.Errorf("%w: not made by %s (serial %s) over the fs-verity digest %s: %w", ErrSignature, cert.Subject, cert.SerialNumber, d, err)
	}
	return nil
}
