# A database made of terraform_data only. `fail_apply = true` makes the apply fail (a local-exec
# provisioner exits 3), so tests can see a failure stop the nodes that depend on this one.
variable "env_name" {
  type    = string
  default = "dev"
}

variable "engine_version" {
  type    = string
  default = "15"
}

variable "publicly_accessible" {
  type    = bool
  default = false
}

variable "fail_apply" {
  type    = bool
  default = false
}

resource "terraform_data" "db" {
  input = {
    environment         = var.env_name
    engine_version      = var.engine_version
    publicly_accessible = var.publicly_accessible
  }
}

# Replaced whenever fail_apply changes, so its create-time provisioner runs again.
resource "terraform_data" "migration" {
  triggers_replace = [var.fail_apply]
  input            = terraform_data.db.id

  provisioner "local-exec" {
    command = var.fail_apply ? "exit 3" : "true"
  }
}

output "id" {
  value = terraform_data.db.id
}
