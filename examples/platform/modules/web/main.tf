# A web deployment made of terraform_data only.
variable "env_name" {
  type    = string
  default = "dev"
}

variable "image" {
  type    = string
  default = "nginx:1.27"
}

variable "replicas" {
  type    = number
  default = 2
}

resource "terraform_data" "deployment" {
  input = {
    environment = var.env_name
    image       = var.image
    replicas    = var.replicas
  }
}

output "id" {
  value = terraform_data.deployment.id
}
