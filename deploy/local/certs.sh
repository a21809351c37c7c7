#!/usr/bin/env bash
# Throw-away X.509 material for the local stack (idempotent): a CA, a host certificate for
# 127.0.0.1/localhost and a user certificate with an unencrypted key (config.yaml's
# x509_user_cert / x509_user_key). Everything lands in ${DATASTORE_VAR:-<repo>/var}/certs/.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${DATASTORE_VAR:-$repo_root/var}/certs"
days=3650
user_subject="${DATASTORE_USER_SUBJECT:-/C=UK/O=Datastore/OU=Users/CN=Datastore Local User}"
mkdir -p "$out"
cd "$out"
# Keys are private from the moment they exist: the services refuse a key group or others may
# read (as ssh does), and a chmod after writing leaves a window.
umask 077

if [[ ! -s ca.pem || ! -s ca.key ]]; then
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$days" \
        -subj "/C=UK/O=Datastore/CN=Datastore Local CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout ca.key -out ca.pem 2>/dev/null
    rm -f hostcert.pem usercert.pem
fi
chmod 600 ca.key

# sign <name> <subject> <extensions>: key <name>key.pem, certificate <name>cert.pem
sign() {
    local name="$1" subject="$2" extensions="$3"
    if [[ -s "${name}cert.pem" && -s "${name}key.pem" ]]; then
        chmod 600 "${name}key.pem"  # also a key made before the services checked
        return 0
    fi
    openssl req -new -newkey rsa:2048 -nodes -subj "$subject" \
        -keyout "${name}key.pem" -out "${name}.csr" 2>/dev/null
    printf '%b\n' "$extensions" > "${name}.ext"
    openssl x509 -req -in "${name}.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -days "$days" -sha256 -extfile "${name}.ext" -out "${name}cert.pem" 2>/dev/null
    rm -f "${name}.csr" "${name}.ext"
    chmod 600 "${name}key.pem"
    chmod 644 "${name}cert.pem"  # certificates are public (umask made them private)
}

sign host "/C=UK/O=Datastore/CN=127.0.0.1" \
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost"
sign user "$user_subject" \
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment,dataEncipherment\nextendedKeyUsage=clientAuth"

# A CA directory with OpenSSL hash links, for tools that want a capath (X509_CERT_DIR).
mkdir -p ca
chmod 755 ca
chmod 644 ca.pem
cp -f ca.pem ca/datastore-local-ca.pem
chmod 644 ca/datastore-local-ca.pem
ln -sf datastore-local-ca.pem "ca/$(openssl x509 -hash -noout -in ca.pem).0"
echo "$out"
