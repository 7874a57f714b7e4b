{{/*
Names. The release name is the prefix of every object (cluster-scoped ones too, so two
releases never collide); `helm install runai-ldap-sync` gives the names of deploy/.
*/}}
{{- define "runai-ldap-sync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "runai-ldap-sync.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "runai-ldap-sync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "runai-ldap-sync.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: name the existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Selector labels: never change on upgrade (a Deployment's selector is immutable). */}}
{{- define "runai-ldap-sync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "runai-ldap-sync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object: the standard ones, part-of as in deploy/, and commonLabels. */}}
{{- define "runai-ldap-sync.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "runai-ldap-sync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: runai-ldap-sync
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* metadata.annotations of every object, when commonAnnotations is set. */}}
{{- define "runai-ldap-sync.annotations" -}}
{{- with .Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "runai-ldap-sync.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Where the ConfigMap and the Secret are mounted: the paths config.ldap.* names. */}}
{{- define "runai-ldap-sync.configDir" -}}/etc/runai-ldap-sync{{- end -}}

{{/*
The project template's text: provisioning.template, else the chart's example
(files/project-template.yaml, the same file as deploy/components/provisioning).
*/}}
{{- define "runai-ldap-sync.projectTemplate" -}}
{{- if .Values.provisioning.template -}}
{{- .Values.provisioning.template -}}
{{- else -}}
{{- .Files.Get "files/project-template.yaml" -}}
{{- end -}}
{{- end -}}

{{/*
What the provisioning ClusterRole needs for the template, as JSON
{"bindings": [...], "clusterRoles": [...]}: the names of its RoleBindings (patch) and the
ClusterRoles they refer to (bind), read from the template text when the chart has it, plus
provisioning.bindingNames and provisioning.clusterRoles. The executor binding and its role are
left out: the base ClusterRole grants them already.
*/}}
{{- define "runai-ldap-sync.templateRBAC" -}}
{{- $bindings := list -}}
{{- $roles := list -}}
{{- $subjects := list -}}
{{- if not .Values.provisioning.existingConfigMap -}}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" (include "runai-ldap-sync.projectTemplate" .) -1 -}}
{{- $o := fromYaml $doc -}}
{{- if hasKey $o "Error" -}}
{{- fail (printf "provisioning.template: a document is not YAML: %s" $o.Error) -}}
{{- end -}}
{{- if $o.kind -}}
{{- if ne $o.kind "RoleBinding" -}}
{{- if not $.Values.provisioning.extraRules -}}
{{- fail (printf "provisioning.template holds a %s (%s): the chart derives permissions for RoleBindings only; grant what it needs (list, get, create, patch on %s) in provisioning.extraRules" $o.kind (default "" $o.metadata.name) $o.kind) -}}
{{- end -}}
{{- else if ne $o.metadata.name "runai-job-executor-manual" -}}
{{- $bindings = append $bindings $o.metadata.name -}}
{{- if and $o.roleRef (eq $o.roleRef.kind "ClusterRole") (ne $o.roleRef.name "runai-job-executor") -}}
{{- $roles = append $roles $o.roleRef.name -}}
{{- range $s := $o.subjects | default list -}}
{{- $subjects = append $subjects (printf "%s:%s/%s" $o.roleRef.name (default "" $s.namespace) $s.name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- else if not (or .Values.provisioning.bindingNames .Values.provisioning.clusterRoles .Values.provisioning.extraRules) -}}
{{- fail "provisioning.existingConfigMap: the chart cannot read that template, so list its RoleBinding names in provisioning.bindingNames and the ClusterRoles they refer to in provisioning.clusterRoles" -}}
{{- end -}}
{{- $bindings = concat $bindings .Values.provisioning.bindingNames | uniq -}}
{{- $roles = concat $roles .Values.provisioning.clusterRoles | uniq -}}
{{- $subjects = concat $subjects (.Values.provisioning.templateSubjects | default list) | uniq -}}
{{- dict "bindings" $bindings "clusterRoles" $roles "subjects" $subjects | toJson -}}
{{- end -}}

{{/*
The daemon's configuration as it is written to the ConfigMap: the config value, with
projects.template pointing at the mounted template when provisioning is on. Fails, naming
the key, where the configuration and the chart's objects would not work together.
*/}}
{{- define "runai-ldap-sync.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $dir := include "runai-ldap-sync.configDir" . -}}
{{- $ldap := default dict $cfg.ldap -}}
{{- $pw := printf "%s/bind-password" $dir -}}
{{- if ne (default "" $ldap.bindPasswordFile) $pw -}}
{{- fail (printf "config.ldap.bindPasswordFile must be %s: the chart mounts the key %s of Secret %s there" $pw .Values.existingSecretPasswordKey .Values.existingSecret) -}}
{{- end -}}
{{- if $ldap.caFile -}}
{{- $ca := printf "%s/ca.crt" $dir -}}
{{- if ne $ldap.caFile $ca -}}
{{- fail (printf "config.ldap.caFile must be %s (the key %s of Secret %s), or null to use the image's CA bundle" $ca (default "<existingSecretCAKey is empty>" .Values.existingSecretCAKey) .Values.existingSecret) -}}
{{- end -}}
{{- if not .Values.existingSecretCAKey -}}
{{- fail "config.ldap.caFile is set but existingSecretCAKey is empty: name the Secret's key holding the CA, or set config.ldap.caFile to null" -}}
{{- end -}}
{{- end -}}
{{- $k8s := default dict $cfg.kubernetes -}}
{{- if ne (default "runai" $k8s.runaiNamespace) .Release.Namespace -}}
{{- fail (printf "config.kubernetes.runaiNamespace is %s but the release namespace is %s: install into Run:AI's namespace (helm -n %s), where the leader-election Lease and the CLI index-map binding live" (default "runai" $k8s.runaiNamespace) .Release.Namespace (default "runai" $k8s.runaiNamespace)) -}}
{{- end -}}
{{- $le := default dict $cfg.leaderElection -}}
{{- if and (gt (int .Values.replicaCount) 1) (hasKey $le "enabled") (not $le.enabled) -}}
{{- fail (printf "replicaCount is %d but config.leaderElection.enabled is false: replicas without leader election would write concurrently" (int .Values.replicaCount)) -}}
{{- end -}}
{{- $projects := default dict $cfg.projects -}}
{{- if and $projects.createNamespaces (not .Values.provisioning.enabled) -}}
{{- fail "config.projects.createNamespaces needs provisioning.enabled: true (the RBAC to create namespaces)" -}}
{{- end -}}
{{- if and $projects.labelExistingNamespaces (not .Values.labelNamespaces.enabled) -}}
{{- fail "config.projects.labelExistingNamespaces needs labelNamespaces.enabled: true (the RBAC to patch namespaces)" -}}
{{- end -}}
{{- if .Values.provisioning.enabled -}}
{{- $tp := printf "%s/project-template.yaml" $dir -}}
{{- if not $projects.template -}}
{{- $_ := set $projects "template" $tp -}}
{{- $_ := set $cfg "projects" $projects -}}
{{- else if ne $projects.template $tp -}}
{{- fail (printf "config.projects.template must be %s (where the chart mounts provisioning's template) or unset" $tp) -}}
{{- end -}}
{{- else if $projects.template -}}
{{- fail "config.projects.template is set but provisioning.enabled is false: the chart mounts the template only with provisioning" -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The metrics port: the port of config.server.address (":9090"). */}}
{{- define "runai-ldap-sync.metricsPort" -}}
{{- $addr := ":9090" -}}
{{- with .Values.config.server }}{{ $addr = default ":9090" .address }}{{ end -}}
{{- $m := regexFind ":[0-9]+$" $addr -}}
{{- if not $m -}}
{{- fail (printf "config.server.address %q has no port: the probes, the Service and the ServiceMonitor need one (e.g. \":9090\")" $addr) -}}
{{- end -}}
{{- trimPrefix ":" $m -}}
{{- end -}}

{{/* The Lease's name, which the Role allows (config.leaderElection.leaseName). */}}
{{- define "runai-ldap-sync.leaseName" -}}
{{- $le := default dict .Values.config.leaderElection -}}
{{- default "runai-ldap-sync" $le.leaseName -}}
{{- end -}}
