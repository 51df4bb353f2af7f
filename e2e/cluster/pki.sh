# Certificates and kubeconfigs of the local cluster, made with openssl. Sourced by `up`.

# sign NAME CN ORG SANS [server|client|both]: a key and a CA-signed certificate in $PKI_DIR.
sign() {
  local name=$1 cn=$2 org=$3 sans=$4 usage=${5:-client} eku subj
  [ -s "$PKI_DIR/$name.crt" ] && [ -s "$PKI_DIR/$name.key" ] && return 0
  case $usage in
    server) eku=serverAuth ;; client) eku=clientAuth ;; both) eku=serverAuth,clientAuth ;;
  esac
  subj="/CN=$cn"
  [ -z "$org" ] || subj="/O=$org$subj"
  {
    echo "[req]"; echo "distinguished_name=dn"; echo "[dn]"; echo "[ext]"
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -z "$sans" ] || echo "subjectAltName=$sans"
  } >"$PKI_DIR/$name.cnf"
  openssl genrsa -out "$PKI_DIR/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI_DIR/$name.key" -subj "$subj" -out "$PKI_DIR/$name.csr" \
    -config "$PKI_DIR/$name.cnf" 2>/dev/null
  openssl x509 -req -in "$PKI_DIR/$name.csr" -CA "$PKI_DIR/ca.crt" -CAkey "$PKI_DIR/ca.key" \
    -CAcreateserial -days 3650 -sha256 -extfile "$PKI_DIR/$name.cnf" -extensions ext \
    -out "$PKI_DIR/$name.crt" 2>/dev/null
  rm -f "$PKI_DIR/$name.csr" "$PKI_DIR/$name.cnf"
}

# kubeconfig FILE USER CERTNAME SERVER
kubeconfig() {
  local file=$1 user=$2 cert=$3 server=$4
  [ -s "$file" ] && return 0
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: esup
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$PKI_DIR/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$PKI_DIR/$cert.crt")
    client-key-data: $(base64 -w0 <"$PKI_DIR/$cert.key")
contexts:
- name: esup
  context:
    cluster: esup
    user: $user
current-context: esup
EOF
  chmod 600 "$file"
}

make_pki() {
  local ip=$1 local_url="https://127.0.0.1:$APISERVER_PORT"
  mkdir -p "$PKI_DIR"
  chmod 700 "$PKI_DIR"
  if [ ! -s "$PKI_DIR/ca.crt" ]; then
    openssl genrsa -out "$PKI_DIR/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "$PKI_DIR/ca.key" -subj "/CN=esup-cluster-ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out "$PKI_DIR/ca.crt" 2>/dev/null
  fi
  if [ ! -s "$PKI_DIR/sa.key" ]; then
    openssl genrsa -out "$PKI_DIR/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI_DIR/sa.key" -pubout -out "$PKI_DIR/sa.pub" 2>/dev/null
  fi
  local svc="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  svc+=",DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost,DNS:$NODE_NAME,DNS:$(hostname)"
  svc+=",IP:127.0.0.1,IP:$ip,IP:$KUBERNETES_SVC_IP"
  sign apiserver kube-apiserver "" "$svc" server
  sign apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "" client
  sign admin kubernetes-admin system:masters "" client
  sign controller-manager system:kube-controller-manager "" "" client
  sign scheduler system:kube-scheduler "" "" client
  sign kube-proxy system:kube-proxy "" "" client
  sign kubelet-client "system:node:$NODE_NAME" system:nodes "" client
  sign kubelet-server "$NODE_NAME" "" "DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1,IP:$ip" server
  kubeconfig "$KUBECONFIG_FILE" kubernetes-admin admin "$local_url"
  kubeconfig "$CONF_DIR/controller-manager.kubeconfig" system:kube-controller-manager controller-manager "$local_url"
  kubeconfig "$CONF_DIR/scheduler.kubeconfig" system:kube-scheduler scheduler "$local_url"
  kubeconfig "$CONF_DIR/kube-proxy.kubeconfig" system:kube-proxy kube-proxy "$local_url"
  kubeconfig "$CONF_DIR/kubelet.kubeconfig" "system:node:$NODE_NAME" kubelet-client "$local_url"
}
