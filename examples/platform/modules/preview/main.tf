# A short-lived preview sandbox made of terraform_data only.
variable "env_name" {
  type    = string
  default = "dev"
}

resource "terraform_data" "sandbox" {
  input = {
    environment = var.env_name
    purpose     = "preview"
  }
}

output "id" {
  value = terraform_data.sandbox.id
}
